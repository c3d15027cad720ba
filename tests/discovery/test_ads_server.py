"""The ADS writer sends only what changed, builds each response once, and waits on no builder
when a generation was warmed before it was published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2

from istiolite.discovery.metrics import Metrics
from istiolite.discovery.xds.cache import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from istiolite.discovery.xds.server import AdsServer, Batch, Connection
from tests.discovery.test_cache import BASE, EDITS, Mesh, names_for


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(1)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


class FakeContext:
    """The writing side of a stream: what the server sent, parsed."""

    def __init__(self, peer: str) -> None:
        self._peer = peer
        self.sent: asyncio.Queue[discovery_pb2.DiscoveryResponse] = asyncio.Queue()

    def peer(self) -> str:
        return self._peer

    async def write(self, body: bytes) -> None:
        await self.sent.put(discovery_pb2.DiscoveryResponse.FromString(body))


class Envoy:
    """One proxy's stream, driven like Envoy: subscribe to every type, ACK every response."""

    def __init__(self, server: AdsServer, mesh: Mesh, name: str, ip: str, app: str) -> None:
        self.server, self.mesh = server, mesh
        self.context = FakeContext(name)
        self.connection = Connection(server, self.context)
        server.connections[self.connection.conn_id] = self.connection
        self.writer = asyncio.create_task(self.connection.write_loop())
        self.node = base_pb2.Node(id=f"sidecar~{ip}~{name}.default~default.svc.cluster.local")
        labels = struct_pb2.Struct()
        labels.update({"NAMESPACE": "default", "LABELS": {"app": app}})
        self.node.metadata.CopyFrom(labels)

    def request(self, type_url: str, response: Any = None) -> None:
        generation = self.server.generation
        names = (
            names_for(generation.snapshot, self.connection.proxy, type_url)
            if self.connection.proxy is not None and generation is not None
            else frozenset()
        )
        self.connection.on_request(
            discovery_pb2.DiscoveryRequest(
                node=self.node,
                type_url=type_url,
                resource_names=sorted(names),
                version_info=response.version_info if response else "",
                response_nonce=response.nonce if response else "",
            )
        )

    async def received(self) -> list[str]:
        """The types sent until the stream goes quiet, each ACKed at once."""
        types: list[str] = []
        wait = 5.0
        while True:
            try:
                response = await asyncio.wait_for(self.context.sent.get(), wait)
            except TimeoutError:
                return types
            types.append(response.type_url)
            self.request(response.type_url, response)
            wait = 0.3

    async def subscribe(self) -> None:
        self.request(CLUSTER)
        for type_url in PUSH_ORDER[1:]:
            self.request(type_url)
        assert sorted(await self.received()) == sorted(PUSH_ORDER)


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    return Mesh(tmp_path)


@pytest.fixture
async def server(mesh: Mesh) -> AsyncIterator[AdsServer]:
    executor = CountingExecutor()
    ads = AdsServer(builder=executor, metrics=Metrics())
    ads.update(mesh.snapshot())
    yield ads
    executor.shutdown()


@pytest.fixture
async def envoys(server: AdsServer, mesh: Mesh) -> AsyncIterator[list[Envoy]]:
    started = [
        Envoy(server, mesh, "productpage-a", "10.1.0.5", "productpage"),
        Envoy(server, mesh, "productpage-b", "10.1.0.6", "productpage"),
    ]
    for e in started:
        await e.subscribe()
    yield started
    for e in started:
        e.writer.cancel()


async def edit(server: AdsServer, mesh: Mesh, name: str, *, warm: bool = False) -> None:
    mesh.write(EDITS[name](BASE))
    assert server.generation is not None
    generation = server.next_generation(mesh.snapshot(previous=server.generation.snapshot))
    if warm:
        await server.warm(generation)
    server.publish(generation)


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("a VirtualService's weights", [ROUTE]),
        ("an EndpointSlice's endpoints", [ENDPOINT]),
        ("a TCP route's weights", [LISTENER]),
        ("a DestinationRule's policy and subsets", [CLUSTER, ENDPOINT]),
        # Its clusters on this port keep their port-level policy; routes gain a hash policy.
        ("a routed-to host's DestinationRule", [ROUTE]),
    ],
)
async def test_an_edit_sends_each_proxy_only_the_types_it_changed(
    server: AdsServer, mesh: Mesh, envoys: list[Envoy], name: str, types: list[str]
) -> None:
    await edit(server, mesh, name)
    for e in envoys:
        assert await e.received() == types


async def test_a_warmed_generation_is_written_without_a_trip_to_the_builder(
    server: AdsServer, mesh: Mesh, envoys: list[Envoy]
) -> None:
    assert isinstance(server.builder, CountingExecutor)
    await edit(server, mesh, "a VirtualService's weights", warm=True)
    before = server.builder.submitted
    for e in envoys:
        assert await e.received() == [ROUTE]
    assert server.builder.submitted == before


async def test_proxies_alike_are_sent_one_shared_body(
    server: AdsServer, mesh: Mesh, envoys: list[Envoy]
) -> None:
    bodies = []
    for e in envoys:
        write = e.context.write

        async def keep(body: bytes, write: Callable[[bytes], Any] = write) -> None:
            bodies.append(body)
            await write(body)

        e.context.write = keep  # type: ignore[method-assign]
    await edit(server, mesh, "a VirtualService's weights")
    for e in envoys:
        assert await e.received() == [ROUTE]
    assert len(bodies) == 2 and bodies[0] is bodies[1]


def test_calls_made_in_one_turn_share_one_hop_and_keep_their_own_errors() -> None:
    executor = CountingExecutor()

    def fail() -> int:
        raise ValueError("broken")

    async def main() -> list[Any]:
        batch = Batch(executor)
        calls = [batch.run(lambda: 1), batch.run(fail), batch.run(lambda: 3)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    results = asyncio.run(main())
    executor.shutdown()
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], ValueError)
    assert executor.submitted == 1


def assignments(response: discovery_pb2.DiscoveryResponse) -> set[str]:
    return {
        endpoint_pb2.ClusterLoadAssignment.FromString(r.value).cluster_name
        for r in response.resources
    }


async def next_response(e: Envoy) -> discovery_pb2.DiscoveryResponse:
    return await asyncio.wait_for(e.context.sent.get(), 5)


async def test_an_endpoint_change_sends_only_the_assignments_it_changed(
    server: AdsServer, mesh: Mesh, envoys: list[Envoy]
) -> None:
    """Incremental EDS: Envoy keeps the clusters a response does not name."""
    await edit(server, mesh, "an EndpointSlice's endpoints")
    generation, proxy = server.generation, envoys[0].connection.proxy
    assert generation is not None and proxy is not None
    subscribed = names_for(generation.snapshot, proxy, ENDPOINT)
    full, _ = generation.respond(ENDPOINT, proxy, subscribed)
    for e in envoys:
        response = await next_response(e)
        assert response.type_url == ENDPOINT and response.version_info == full
        reviews = {n for n in subscribed if n.endswith("|reviews.default.svc.cluster.local")}
        assert assignments(response) == reviews  # the edited slice is reviews'
        assert len(reviews) < len(subscribed)
        e.request(ENDPOINT, response)
    # A request for other names is answered in full.
    e = envoys[0]
    e.connection.on_request(
        discovery_pb2.DiscoveryRequest(
            type_url=ENDPOINT, resource_names=sorted(subscribed - {min(subscribed)})
        )
    )
    assert assignments(await next_response(e)) == subscribed - {min(subscribed)}


async def test_after_a_nack_the_next_endpoint_push_is_whole(
    server: AdsServer, mesh: Mesh, envoys: list[Envoy]
) -> None:
    """Envoy kept what it had before the rejected response: a part would not bring it level."""
    e = envoys[0]
    await edit(server, mesh, "an EndpointSlice's endpoints")
    rejected = await next_response(e)
    assert server.generation is not None and e.connection.proxy is not None
    subscribed = names_for(server.generation.snapshot, e.connection.proxy, ENDPOINT)
    e.connection.on_request(
        discovery_pb2.DiscoveryRequest(
            type_url=ENDPOINT,
            resource_names=sorted(subscribed),
            response_nonce=rejected.nonce,
            error_detail=status_pb2.Status(message="rejected"),
        )
    )
    moved = EDITS["a WorkloadEntry's address and weight"]  # ratings' endpoints this time
    mesh.write(moved(EDITS["an EndpointSlice's endpoints"](BASE)))
    server.publish(server.next_generation(mesh.snapshot(previous=server.generation.snapshot)))
    response = await next_response(e)
    assert response.type_url == ENDPOINT and assignments(response) == subscribed
