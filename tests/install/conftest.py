"""The installer's kube tier: a control plane of its own, shared by this directory's tests.

Not the `tests/kube` one: install registers a cluster-wide injection webhook with failurePolicy
Fail pointing at an istiod that never runs here (no nodes), which would refuse the pods other
tests create in injection-enabled namespaces.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from istiolite.install.cluster import Cluster

from istiolite.testing.apiserver import Binaries, BinariesMissing, ControlPlane, control_plane


@pytest.fixture(scope="session")
def install_plane() -> Iterator[ControlPlane]:
    if os.environ.get("ISTIOLITE_SKIP_KUBE") == "1":
        pytest.skip("ISTIOLITE_SKIP_KUBE=1")
    try:
        binaries = Binaries.find()
    except BinariesMissing as e:
        pytest.fail(f"{e} (or set ISTIOLITE_SKIP_KUBE=1 to skip the kube tier)", pytrace=False)
    with control_plane(binaries) as plane:
        yield plane


@pytest.fixture
def kubeconfig(install_plane: ControlPlane) -> Path:
    return install_plane.kubeconfig


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    connected = Cluster.connect(kubeconfig)
    yield connected
    connected.close()
