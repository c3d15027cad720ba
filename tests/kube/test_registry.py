"""The Kubernetes registry in-process against the real API server: what it lists and watches
becomes typed resources, and the server's own answers (410, 404) lead where they should."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod, Service

from istiolite.api import DestinationRule, EndpointSlice, Other, Sidecar, VirtualService
from istiolite.api import Pod as MeshPod
from istiolite.api import Service as MeshService
from istiolite.api.networking import OutboundMode
from istiolite.discovery.kube import KubeRegistry
from istiolite.discovery.kube import source as source_module
from istiolite.discovery.kube.kinds import KINDS, Kind
from istiolite.discovery.kube.source import KubeSource
from istiolite.testing.apiserver import ControlPlane
from istiolite.testing.wait import eventually_async as eventually
from tests.kube.support import (
    endpoint_slice,
    istio_resource,
    new_namespace,
    service,
    virtual_service,
)

pytestmark = pytest.mark.kube


class Running:
    def __init__(self, registry: KubeRegistry) -> None:
        self.registry = registry
        self.changes = 0

    def find(self, kind: type[Any], namespace: str, name: str) -> Any:
        return next(
            (
                r
                for r in self.registry.resources()
                if isinstance(r, kind) and r.meta.key == f"{namespace}/{name}"
            ),
            None,
        )


@pytest.fixture
async def running(istio_crds: ControlPlane) -> AsyncIterator[Running]:
    holder: list[Running] = []
    client = AsyncClient(KubeConfig.from_file(istio_crds.kubeconfig), trust_env=False)
    registry = KubeRegistry(client, lambda: setattr(holder[0], "changes", holder[0].changes + 1))
    holder.append(Running(registry))
    task = asyncio.create_task(registry.run())
    assert await registry.wait_synced(asyncio.Event())
    yield holder[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_objects_become_typed_resources_and_deletes_remove_them(
    running: Running, kube: AsyncClient
) -> None:
    ns = await new_namespace(kube, labels={"istio-injection": "enabled"})
    await kube.create(service(ns, "reviews", {"http": 9080}))
    await kube.create(endpoint_slice(ns, "reviews", ["10.1.0.5"], {"http": 9080}))
    await kube.create(
        Pod(
            metadata=ObjectMeta(name="reviews-v1", namespace=ns, labels={"app": "reviews"}),
            spec=PodSpec(containers=[Container(name="app", image="reviews")]),
        )
    )
    await kube.create(virtual_service(ns, "reviews", ["all"]))
    rule: dict[str, Any] = {
        "metadata": {"name": "reviews", "namespace": ns},
        "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }
    await kube.create(istio_resource("DestinationRule", "v1beta1")(**rule))

    await eventually(
        lambda: running.find(DestinationRule, ns, "reviews"), what="the DestinationRule"
    )
    svc = running.find(MeshService, ns, "reviews")
    assert svc.cluster_ip and [p.port for p in svc.ports] == [9080]
    assert running.find(EndpointSlice, ns, "reviews-abcde").service == "reviews"
    assert running.find(MeshPod, ns, "reviews-v1").meta.labels == {"app": "reviews"}
    assert [r.name for r in running.find(VirtualService, ns, "reviews").spec.http] == ["all"]
    namespace = next(
        r
        for r in running.registry.resources()
        if isinstance(r, Other) and r.kind == "Namespace" and r.meta.name == ns
    )
    assert namespace.meta.labels["istio-injection"] == "enabled"
    assert not [key for key in running.registry.errors() if ns in key]

    await kube.delete(Service, "reviews", namespace=ns)
    await eventually(lambda: running.find(MeshService, ns, "reviews") is None, what="the delete")


async def test_a_sidecar_becomes_a_typed_sidecar(running: Running, kube: AsyncClient) -> None:
    ns = await new_namespace(kube)
    body: dict[str, Any] = {
        "metadata": {"name": "reviews", "namespace": ns},
        "spec": {
            "workloadSelector": {"labels": {"app": "reviews"}},
            "egress": [{"hosts": ["./*", "istio-system/*"]}],
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        },
    }
    await kube.create(istio_resource("Sidecar", "v1beta1")(**body))

    sidecar = await eventually(lambda: running.find(Sidecar, ns, "reviews"), what="the Sidecar")
    assert sidecar.spec.workload_selector.labels == {"app": "reviews"}
    assert [e.hosts for e in sidecar.spec.egress] == [("./*", "istio-system/*")]
    assert sidecar.spec.outbound_traffic_policy.mode is OutboundMode.REGISTRY_ONLY
    assert not [key for key in running.registry.errors() if ns in key]


async def test_a_status_only_update_is_not_a_change(running: Running, kube: AsyncClient) -> None:
    ns = await new_namespace(kube)
    await kube.create(service(ns, "ratings", {"http": 9080}))
    await eventually(lambda: running.find(MeshService, ns, "ratings"), what="the Service")
    before, changes = running.find(MeshService, ns, "ratings"), running.changes

    await kube.patch(
        Service,
        "ratings",
        {"metadata": {"annotations": {"example.com/owner": "team-a"}}},
        namespace=ns,
    )
    await kube.patch(
        Service,
        "ratings",
        {"metadata": {"annotations": {"example.com/owner": "team-b"}}},
        namespace=ns,
    )
    await asyncio.sleep(0.5)

    assert running.find(MeshService, ns, "ratings") is before
    assert running.changes == changes


async def test_a_list_comes_in_pages_of_one_resource_version(
    istio_crds: ControlPlane, kube: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = await new_namespace(kube)
    for i in range(5):
        await kube.create(service(ns, f"svc-{i}", {"http": 9080}))
    monkeypatch.setattr(source_module, "CHUNK_SIZE", 2)

    pages = [
        p async for p in KubeSource(kube, next(k for k in KINDS if k.kind == "Service")).list()
    ]

    assert all(len(p.items) <= 2 for p in pages) and len(pages) >= 3
    assert len({p.resource_version for p in pages}) == 1
    names = {
        i["metadata"]["name"] for p in pages for i in p.items if i["metadata"]["namespace"] == ns
    }
    assert names == {f"svc-{i}" for i in range(5)}


async def test_a_kind_the_server_does_not_serve_counts_as_empty(istio_crds: ControlPlane) -> None:
    widget = Kind(
        "Widget", (create_namespaced_resource("nothing.example.com", "v1", "Widget", "widgets"),)
    )
    client = AsyncClient(KubeConfig.from_file(istio_crds.kubeconfig), trust_env=False)
    registry = KubeRegistry(client, lambda: None, kinds=[widget])
    task = asyncio.create_task(registry.run())
    try:
        async with asyncio.timeout(10):
            assert await registry.wait_synced(asyncio.Event())
        assert registry.resources() == []
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
