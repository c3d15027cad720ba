"""The installer's kube tier: a control plane of its own, shared by this directory's tests.

Not the `tests/kube` one: install registers a cluster-wide injection webhook with failurePolicy
Fail pointing at an istiod that never runs here (no nodes), which would refuse the pods other
tests create in injection-enabled namespaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from istiolite.install.cluster import Cluster
from istiolite.testing.apiserver import ControlPlane, control_plane
from tests.kube_tier import kube_binaries_or_skip


@pytest.fixture(scope="session")
def install_plane() -> Iterator[ControlPlane]:
    with control_plane(kube_binaries_or_skip()) as plane:
        yield plane


@pytest.fixture
def kubeconfig(install_plane: ControlPlane) -> Path:
    return install_plane.kubeconfig


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    connected = Cluster.connect(kubeconfig)
    yield connected
    connected.close()
