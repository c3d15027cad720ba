"""The `kube` tier: one real etcd + kube-apiserver for the whole session (built by
`make kube-bins`), and a lightkube client per test.

Missing binaries fail the tests rather than skip them (tests/kube_tier.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from lightkube import AsyncClient, KubeConfig

from istiolite.testing.apiserver import Binaries, ControlPlane, control_plane
from tests.kube.support import install_crds
from tests.kube_tier import kube_binaries_or_skip


@pytest.fixture(scope="session")
def kube_binaries() -> Binaries:
    return kube_binaries_or_skip()


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
    """The session's control plane with istiolite's CRDs (VirtualService, DestinationRule,
    Sidecar), installed from the shipped manifests."""
    install_crds(kube_control_plane.kubeconfig)
    return kube_control_plane
