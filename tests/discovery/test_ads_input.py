"""Hostile and broken ADS input, over a real gRPC stream: nothing crashes the server, spins it
or floods its log. A stream that cannot be served is closed with a status saying why; the
rest is ignored, answered, or counted once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2

from istiolite.discovery.metrics import Metrics
from istiolite.discovery.xds.cache import CLUSTER, ENDPOINT, LISTENER
from istiolite.discovery.xds.server import ADS_SERVICE, AdsServer
from istiolite.testing.wait import eventually_async
from tests.discovery.test_cache import Mesh

NODE = "sidecar~10.1.0.5~productpage-a.default~default.svc.cluster.local"
UNKNOWN = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
LOGGER = "istiolite.discovery.xds.server"


@pytest.fixture
async def ads(tmp_path: Path) -> AsyncIterator[tuple[AdsServer, str]]:
    executor = ThreadPoolExecutor(1)
    server = AdsServer(builder=executor, metrics=Metrics())
    server.update(Mesh(tmp_path).snapshot())
    grpc_server = grpc.aio.server()
    grpc_server.add_generic_rpc_handlers([server.handler()])
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    yield server, f"127.0.0.1:{port}"
    await grpc_server.stop(0)
    executor.shutdown()


class Stream:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        method = self.channel.stream_stream(
            f"/{ADS_SERVICE}/StreamAggregatedResources",
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )
        self.call: Any = method()

    async def send(self, **fields: Any) -> None:
        await self.call.write(discovery_pb2.DiscoveryRequest(**fields))

    async def read(self) -> discovery_pb2.DiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), 10)
        assert response is not grpc.aio.EOF, await self.call.details()
        return response

    async def closed_with(self) -> tuple[grpc.StatusCode, str]:
        code = await asyncio.wait_for(self.call.code(), 10)
        return code, await self.call.details()

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


def node(node_id: str = NODE, **metadata: Any) -> base_pb2.Node:
    found = base_pb2.Node(id=node_id)
    if metadata:
        data = struct_pb2.Struct()
        data.update(metadata)
        found.metadata.CopyFrom(data)
    return found


@pytest.fixture
async def stream(ads: tuple[AdsServer, str]) -> AsyncIterator[Stream]:
    s = Stream(ads[1])
    yield s
    await s.close()


@pytest.mark.parametrize(
    ("node_id", "metadata", "problem"),
    [
        ("", {}, "node id is empty; expected TYPE~IP~POD.NAMESPACE~DOMAIN"),
        ("a~b", {}, "has 2 parts"),
        ("alien~10.0.0.1~p.default~d", {}, "type 'alien' is not one of sidecar, router"),
        ("sidecar~not-an-ip~p.default~d", {}, "no valid IP address"),
        ("sidecar~10.0.0.1~nonamespace~d", {}, "'nonamespace' is not POD.NAMESPACE"),
        ("Not Valid.default", {}, "is not POD.NAMESPACE"),
        ("x" * 5000, {}, "at most 1024"),
        ("p.default", {"NAMESPACE": 7}, "NAMESPACE: must be a string"),
        ("p.default", {"LABELS": "app=x"}, "LABELS: must be a map of strings"),
    ],
)
async def test_a_bad_node_closes_the_stream_naming_the_problem(
    stream: Stream, node_id: str, metadata: dict[str, Any], problem: str
) -> None:
    await stream.send(node=node(node_id, **metadata), type_url=CLUSTER)
    code, details = await stream.closed_with()
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert problem in details, details
    assert len(details) < 600


@pytest.mark.parametrize(
    ("node_id", "metadata"),
    [
        (NODE, {}),
        ("router~10.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local", {}),
        ("sidecar~not-an-ip~p.default~d", {"INSTANCE_IPS": "10.0.0.7,fd00::7"}),
        ("productpage-a.default", {}),
    ],
)
async def test_good_nodes_are_served(
    stream: Stream, node_id: str, metadata: dict[str, Any]
) -> None:
    await stream.send(node=node(node_id, **metadata), type_url=CLUSTER)
    assert (await stream.read()).type_url == CLUSTER


async def test_a_request_before_the_node_is_known_closes_the_stream(stream: Stream) -> None:
    await stream.send(type_url=CLUSTER)
    code, details = await stream.closed_with()
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "must carry the node" in details


async def test_a_node_changing_on_a_stream_closes_it(stream: Stream) -> None:
    await stream.send(node=node(), type_url=CLUSTER)
    response = await stream.read()
    # The same node again (Envoy without set_node_on_first_message_only) is fine.
    await stream.send(node=node(), type_url=CLUSTER, response_nonce=response.nonce)
    await stream.send(node=node(), type_url=LISTENER)
    assert (await stream.read()).type_url == LISTENER
    await stream.send(node=node("other.default"), type_url=LISTENER)
    code, details = await stream.closed_with()
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "node id changed" in details


async def test_too_many_resource_names_close_the_stream(stream: Stream) -> None:
    names = [f"c{i}" for i in range(200_001)]
    await stream.send(node=node(), type_url=ENDPOINT, resource_names=names)
    code, details = await stream.closed_with()
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "at most 200000" in details


async def test_an_unknown_type_is_answered_empty_logged_once_and_the_stream_goes_on(
    stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    await stream.send(node=node(), type_url=UNKNOWN)
    empty = await stream.read()
    assert (empty.type_url, len(empty.resources)) == (UNKNOWN, 0)
    for _ in range(100):  # it ACKs, and asks again and again
        await stream.send(type_url=UNKNOWN, response_nonce=empty.nonce)
        await stream.send(type_url=UNKNOWN)
    for i in range(1000):  # types made up without end
        await stream.send(type_url=f"{UNKNOWN}{i}")
    await stream.send(type_url=CLUSTER)
    while (await stream.read()).type_url != CLUSTER:
        pass
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    assert "does not serve" in errors[0] and "past 8 unknown types" in errors[1]


async def test_thousands_of_nacks_of_one_response_count_once_and_log_two_lines(
    ads: tuple[AdsServer, str], stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = ads
    caplog.set_level(logging.INFO, LOGGER)
    await stream.send(node=node(), type_url=CLUSTER)
    response = await stream.read()
    error = status_pb2.Status(code=3, message="line one\nline two\nline three " + "x" * 10_000)
    for _ in range(5000):
        await stream.send(type_url=CLUSTER, response_nonce=response.nonce, error_detail=error)
    await stream.send(type_url=LISTENER)  # in order after the NACKs: all are taken when answered
    assert (await stream.read()).type_url == LISTENER
    [row] = [c.status() for c in server.connections.values()]
    assert row["types"]["CDS"]["nacks"] == 5000
    assert row["types"]["CDS"]["nacked"] == response.version_info
    assert len(row["types"]["CDS"]["error"]) < 4200  # kept short, and shown so
    rejects = server.metrics.registry.get_sample_value("pilot_total_xds_rejects", {"type": "cds"})
    assert rejects == 1
    await stream.close()
    await eventually_async(lambda: not server.connections, what="the stream to close")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines
    assert "rejected CDS" in lines[0] and "\n" not in lines[0] and len(lines[0]) < 4500
    assert "4999 more" in lines[1]


async def test_garbage_nonces_and_errors_without_nonce_change_nothing(
    ads: tuple[AdsServer, str], stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = ads
    caplog.set_level(logging.INFO, LOGGER)
    await stream.send(node=node(), type_url=CLUSTER)
    response = await stream.read()
    await stream.send(type_url=CLUSTER, response_nonce=response.nonce, version_info="v" * 100_000)
    bad = status_pb2.Status(message="no nonce")
    for i in range(1000):
        await stream.send(type_url=CLUSTER, response_nonce=f"garbage-{i}" * 50)
        await stream.send(
            type_url=CLUSTER,
            response_nonce=f"garbage-{i}",
            error_detail=status_pb2.Status(message="x"),
        )
        await stream.send(type_url=ENDPOINT, error_detail=bad, resource_names=[f"n{i}"])
    await stream.send(type_url=LISTENER)
    while (await stream.read()).type_url != LISTENER:
        pass
    [row] = [c.status() for c in server.connections.values()]
    cds = row["types"]["CDS"]
    assert cds["acked"] == cds["sent"] == response.version_info  # the version sent, not claimed
    assert cds["nacked"] == "" and cds["nacks"] == 0
    assert server.metrics.registry.get_sample_value("pilot_total_xds_rejects", {"type": "cds"}) in (
        None,
        0,
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings  # one per kind of garbage
