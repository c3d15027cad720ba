"""pilot-discovery on a real API server drives a real Envoy: objects written with the
Kubernetes API become clusters, endpoints and routes, and a bad VirtualService takes nothing
away from what Envoy has."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Event, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from istiolite.testing.apiserver import ControlPlane
from istiolite.testing.mesh import Discovery, Envoy
from istiolite.testing.wait import eventually_async as eventually
from tests.kube.support import (
    FIELD_MANAGER,
    VirtualService,
    clusters,
    endpoint_slice,
    endpoints,
    new_namespace,
    rejected_updates,
    route_names,
    service,
    virtual_service,
)

pytestmark = [pytest.mark.kube, pytest.mark.envoy]


@pytest.fixture(scope="module")
def discovery(
    istio_crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Discovery]:
    work = tmp_path_factory.mktemp("discovery")
    started = Discovery(None, work, extra_args=[f"--kubeconfig={istio_crds.kubeconfig}"]).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def envoy(discovery: Discovery) -> Iterator[Envoy]:
    started = Envoy(
        discovery.address,
        discovery.workdir,
        name="productpage-v1-a",
        ip="10.1.0.99",
        labels={"app": "productpage"},
    ).start()
    started.wait_live()
    yield started
    started.stop()


async def apply(kube: AsyncClient, obj: object) -> None:
    await kube.apply(obj, field_manager=FIELD_MANAGER, force=True)  # type: ignore[call-overload]


async def test_a_service_and_its_endpoints_follow_the_kubernetes_api(
    kube: AsyncClient, envoy: Envoy
) -> None:
    ns = await new_namespace(kube)
    http = f"outbound|9080||reviews.{ns}.svc.cluster.local"
    grpc = f"outbound|9090||reviews.{ns}.svc.cluster.local"

    await kube.create(service(ns, "reviews", {"http": 9080}))
    await kube.create(endpoint_slice(ns, "reviews", ["10.1.0.5"], {"http": 9080}))
    await eventually(lambda: endpoints(envoy, http) == {"10.1.0.5:9080"}, what="the endpoint")

    await apply(kube, endpoint_slice(ns, "reviews", ["10.1.0.5", "10.1.0.6"], {"http": 9080}))
    await eventually(
        lambda: endpoints(envoy, http) == {"10.1.0.5:9080", "10.1.0.6:9080"},
        what="the second endpoint",
    )

    await apply(kube, service(ns, "reviews", {"http": 9080, "grpc": 9090}))
    await eventually(lambda: grpc in clusters(envoy), what="the new port's cluster")

    await kube.delete(EndpointSlice, "reviews-abcde", namespace=ns)
    await eventually(lambda: not endpoints(envoy, http), what="the endpoints to go")
    await kube.delete(Service, "reviews", namespace=ns)
    await eventually(lambda: not {http, grpc} & clusters(envoy), what="the clusters to go")
    assert not rejected_updates(envoy)


async def test_applying_a_virtual_service_changes_envoy_routes(
    kube: AsyncClient, envoy: Envoy
) -> None:
    ns = await new_namespace(kube)
    host = f"ratings.{ns}.svc.cluster.local:9080"
    await kube.create(service(ns, "ratings", {"http": 9080}))
    await eventually(lambda: route_names(envoy, "9080", host) == ["default"], what="routes")

    await kube.create(virtual_service(ns, "ratings", ["v1-only"]))
    await eventually(lambda: route_names(envoy, "9080", host) == ["v1-only"], what="the VS")

    await apply(kube, virtual_service(ns, "ratings", ["canary", "stable"]))
    await eventually(
        lambda: route_names(envoy, "9080", host) == ["canary", "stable"], what="the edit"
    )

    await kube.delete(VirtualService, "ratings", namespace=ns)
    await eventually(lambda: route_names(envoy, "9080", host) == ["default"], what="the delete")
    assert not rejected_updates(envoy)


async def test_an_invalid_virtual_service_gets_an_event_and_envoy_keeps_its_routes(
    kube: AsyncClient, envoy: Envoy, discovery: Discovery
) -> None:
    ns = await new_namespace(kube)
    host = f"details.{ns}.svc.cluster.local:9080"
    await kube.create(service(ns, "details", {"http": 9080}))
    await kube.create(virtual_service(ns, "details", ["v1-only"]))
    await eventually(lambda: route_names(envoy, "9080", host) == ["v1-only"], what="the VS")

    # The CRD's schema admits any integer weight; istiolite's validation refuses a negative one.
    await apply(kube, virtual_service(ns, "details", ["broken"], weight=-5))

    async def events() -> list[Event]:
        return [e async for e in kube.list(Event, namespace=ns)]

    found: list[Event] = []
    for _ in range(100):
        found = await events()
        if found:
            break
        await asyncio.sleep(0.1)
    [event] = found
    assert event.type == "Warning" and event.reason == "InvalidConfiguration"
    assert event.involvedObject.kind == "VirtualService"
    assert event.involvedObject.name == "details"
    # `kubectl describe` finds an object's events by its uid.
    current = await kube.get(VirtualService, "details", namespace=ns)
    assert event.involvedObject.uid == current.metadata.uid  # type: ignore[union-attr]
    assert event.message == (
        "invalid, istiolite keeps using its last valid version: "
        "spec.http[0].route[0].weight: must be 0..2147483647, got -5"
    )
    errors = discovery.get("/debug/configz").json()["errors"]
    assert errors[f"VirtualService {ns}/details"] == [
        "spec.http[0].route[0].weight: must be 0..2147483647, got -5"
    ]

    await asyncio.sleep(1)  # a push, had there been one, would have reached Envoy by now
    assert route_names(envoy, "9080", host) == ["v1-only"]
    assert not rejected_updates(envoy)
    assert all(
        not t["nacked"] for row in discovery.syncz()["proxies"] for t in row["types"].values()
    )

    await apply(kube, virtual_service(ns, "details", ["fixed"]))
    await eventually(lambda: route_names(envoy, "9080", host) == ["fixed"], what="the fix")
    assert f"VirtualService {ns}/details" not in discovery.get("/debug/configz").json()["errors"]
