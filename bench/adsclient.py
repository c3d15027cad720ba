"""Simulated sidecars for benchmarks: many ADS streams from one process.

`python -m bench.adsclient ADDRESS FIRST COUNT SERVICES [scoped]` opens COUNT streams (proxies
FIRST..), each on its own connection as every Envoy has, subscribes to CDS, EDS (every cluster,
or with `scoped` its own namespace's, as under a `./*` Sidecar), LDS and RDS like an Envoy,
ACKs every response at once, and prints one JSON line per response:
{"p": proxy, "t": "RDS", "v": version, "ts": time}.

A stream the server ends (istiod refuses new streams past its admission rate with
RESOURCE_EXHAUSTED) is opened again after Envoy's backoff for xDS streams: a random delay below
0.5 s, doubling per attempt up to 30 s. Each is printed as {"p": proxy, "t": "retry", ...}.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
from collections.abc import AsyncIterator

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2

from bench.meshgen import NAMESPACES, proxy_identity

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
# Envoy's backoff between xDS stream attempts (JitteredExponentialBackOffStrategy), in seconds.
BACKOFF_BASE, BACKOFF_MAX = 0.5, 30.0
SHORT = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS"}


def node(i: int) -> base_pb2.Node:
    node_id, ns, ip, app = proxy_identity(i)
    metadata = struct_pb2.Struct()
    name = node_id.split("~")[2].split(".")[0]
    labels = {"app": app, "version": "v1"}
    metadata.update({"NAMESPACE": ns, "NAME": name, "INSTANCE_IPS": ip, "LABELS": labels})
    return base_pb2.Node(id=node_id, metadata=metadata)


def eds_names(services: int, namespace: int | None = None) -> list[str]:
    return [
        f"outbound|8080|{subset}|svc-{i}.ns-{i % NAMESPACES}.svc.cluster.local"
        for i in range(services)
        if namespace is None or i % NAMESPACES == namespace
        for subset in ("", "v1", "v2")
    ]


async def proxy(channel: grpc.aio.Channel, i: int, services: int, scoped: bool) -> None:
    """One proxy's ADS stream, opened again as Envoy would when the server ends it."""
    for attempt in itertools.count():
        try:
            await stream(channel, i, services, scoped)
        except grpc.aio.AioRpcError as e:
            event = {"p": i, "t": "retry", "v": e.code().name, "ts": time.time()}
            print(json.dumps(event), flush=True)
        await asyncio.sleep(random.uniform(0, min(BACKOFF_BASE * 2**attempt, BACKOFF_MAX)))


async def stream(channel: grpc.aio.Channel, i: int, services: int, scoped: bool) -> None:
    # None ends the requests: grpc's task reading them outlives a stream the server ended.
    queue: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
    first = discovery_pb2.DiscoveryRequest(node=node(i), type_url=CLUSTER)
    await queue.put(first)
    await queue.put(discovery_pb2.DiscoveryRequest(type_url=LISTENER))
    names = {ENDPOINT: eds_names(services, i % NAMESPACES if scoped else None), ROUTE: ["8080"]}

    async def requests() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await queue.get()) is not None:
            yield request

    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    try:
        await _respond(stub.StreamAggregatedResources(requests()), queue, i, names)
    finally:
        queue.put_nowait(None)


async def _respond(
    responses: AsyncIterator[discovery_pb2.DiscoveryResponse],
    queue: asyncio.Queue[discovery_pb2.DiscoveryRequest | None],
    i: int,
    names: dict[str, list[str]],
) -> None:
    """ACK every response at once, and subscribe to EDS and RDS as their CDS and LDS come."""
    subscribed = set()
    async for response in responses:
        now = time.time()
        t = response.type_url
        print(
            json.dumps({"p": i, "t": SHORT[t], "v": response.version_info, "ts": now}), flush=True
        )
        await queue.put(
            discovery_pb2.DiscoveryRequest(
                type_url=t, version_info=response.version_info, response_nonce=response.nonce,
                resource_names=names.get(t, []),
            )
        )  # fmt: skip
        follow = {CLUSTER: ENDPOINT, LISTENER: ROUTE}.get(t)
        if follow and follow not in subscribed:
            subscribed.add(follow)
            await queue.put(
                discovery_pb2.DiscoveryRequest(type_url=follow, resource_names=names[follow])
            )


async def main(address: str, first: int, count: int, services: int, scoped: bool) -> None:
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(count)]
    await asyncio.gather(
        *(proxy(channels[i - first], i, services, scoped) for i in range(first, first + count))
    )


if __name__ == "__main__":
    address, first, count, services = sys.argv[1], *map(int, sys.argv[2:5])
    asyncio.run(main(address, first, count, services, sys.argv[5:] == ["scoped"]))
