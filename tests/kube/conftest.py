"""The `kube` tier: one real etcd + kube-apiserver for the whole session (built by
`make kube-bins`), and a lightkube client per test.

Missing binaries fail the tests rather than skip them, so CI cannot pass by testing nothing;
ISTIOLITE_SKIP_KUBE=1 skips the tier on purpose.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from lightkube import AsyncClient, KubeConfig

from istiolite.testing.apiserver import Binaries, BinariesMissing, ControlPlane, control_plane
from tests.kube.support import install_crds


@pytest.fixture(scope="session")
def kube_binaries() -> Binaries:
    if os.environ.get("ISTIOLITE_SKIP_KUBE") == "1":
        pytest.skip("ISTIOLITE_SKIP_KUBE=1")
    try:
        return Binaries.find()
    except BinariesMissing as e:
        pytest.fail(f"{e} (or set ISTIOLITE_SKIP_KUBE=1 to skip the kube tier)", pytrace=False)


@pytest.fixture(scope="session")
def kube_control_plane(kube_binaries: Binaries) -> Iterator[ControlPlane]:
    with control_plane(kube_binaries) as plane:
        yield plane


@pytest.fixture
def kubeconfig(kube_control_plane: ControlPlane) -> KubeConfig:
    return KubeConfig.from_file(kube_control_plane.kubeconfig)


@pytest.fixture
async def kube(kubeconfig: KubeConfig) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(kubeconfig, field_manager="istiolite-test", trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def istio_crds(kube_control_plane: ControlPlane) -> ControlPlane:
    """The session's control plane with istiolite's VirtualService and DestinationRule CRDs."""
    install_crds(kube_control_plane.kubeconfig)
    return kube_control_plane
