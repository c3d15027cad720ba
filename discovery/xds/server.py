"""The ADS stream server (state of the world) on grpc.aio.

Each stream gets a reader (requests in, protocol rules applied) and one writer task (responses
out), so a slow Envoy only slows its own stream. A push is a wake-up: the writer builds what
is current when it runs, which coalesces any number of pushes that arrive while it is busy.
Responses are shared bytes plus a per-stream nonce (see cache.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format
from istiolite.discovery.metrics import Metrics
from istiolite.discovery.model import Proxy, Snapshot
from istiolite.discovery.xds.cache import (
    NAMED_TYPES,
    PUSH_ORDER,
    SHORT_NAMES,
    Generation,
    PartCache,
    with_nonce,
)
from istiolite.discovery.xds.protocol import Request, TypeState, Verdict, on_request, sent

log = logging.getLogger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


@dataclass(frozen=True, slots=True)
class _Awaiting:
    nonce: str
    changed_at: float  # when the configuration change being pushed happened


class Connection:
    """One Envoy's ADS stream."""

    _ids = itertools.count(1)

    def __init__(self, server: AdsServer, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.server = server
        self.context = context
        self.conn_id = f"{context.peer()}-{next(self._ids)}"
        self.connected_at = time.time()
        self.proxy: Proxy | None = None
        self.states: dict[str, TypeState] = {}
        self.pending: set[str] = set()  # types with a request that must be answered
        self.awaiting: dict[str, _Awaiting] = {}
        self.wake = asyncio.Event()
        self._nonces = itertools.count(1)

    def push(self) -> None:
        self.wake.set()

    def on_request(self, message: discovery_pb2.DiscoveryRequest) -> None:
        if self.proxy is None:
            if not message.HasField("node"):
                raise ValueError("the first request on a stream must carry the node")
            metadata = json_format.MessageToDict(message.node.metadata)
            self.proxy = Proxy.from_node(message.node.id, metadata)
            log.info("proxy %s connected (%s)", self.proxy.id, self.conn_id)
        type_url = message.type_url
        names = frozenset(message.resource_names) if type_url in NAMED_TYPES else frozenset()
        request = Request(
            version_info=message.version_info,
            nonce=message.response_nonce,
            names=names,
            error=message.error_detail.message if message.HasField("error_detail") else "",
        )
        state, verdict, respond = on_request(self.states.get(type_url), request)
        self.states[type_url] = state
        if verdict is Verdict.NACK:
            self.server.metrics.rejects.labels(SHORT_NAMES.get(type_url, type_url)).inc()
            log.warning(
                "proxy %s rejected %s version %s: %s",
                self.proxy.id,
                SHORT_NAMES.get(type_url, type_url),
                state.nacked_version,
                request.error,
            )
        elif verdict is Verdict.ACK:
            awaiting = self.awaiting.pop(type_url, None)
            if awaiting is not None and awaiting.nonce == request.nonce:
                self.server.metrics.convergence.observe(time.monotonic() - awaiting.changed_at)
        if respond:
            self.pending.add(type_url)
            self.wake.set()

    async def write_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            generation = self.server.generation
            if generation is None or self.proxy is None:
                continue
            for type_url in PUSH_ORDER:
                await self._send(generation, type_url)

    async def _send(self, generation: Generation, type_url: str) -> None:
        state = self.states.get(type_url)
        if state is None or self.proxy is None:
            return  # Envoy has not asked for this type (yet)
        must = type_url in self.pending
        self.pending.discard(type_url)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            version, body = await loop.run_in_executor(
                self.server.builder,
                generation.respond,
                type_url,
                self.proxy,
                state.names,
                None if must else state.sent_version,
            )
        except Exception:
            # A translation bug must not take the stream down: Envoy keeps its last config.
            self.server.metrics.build_errors.labels(SHORT_NAMES.get(type_url, type_url)).inc()
            log.exception(
                "building %s for proxy %s failed",
                SHORT_NAMES.get(type_url, type_url),
                self.proxy.id,
            )
            return
        state = self.states[type_url]
        if body is None or (not must and version == state.sent_version):
            return
        nonce = f"{generation.number}-{next(self._nonces)}"
        # Record before writing: Envoy may ACK before write() returns.
        self.states[type_url] = sent(state, version=version, nonce=nonce)
        if not must:
            self.awaiting[type_url] = _Awaiting(nonce=nonce, changed_at=generation.created)
        await self.context.write(with_nonce(body, nonce))
        short = SHORT_NAMES.get(type_url, type_url)
        self.server.metrics.pushes.labels(short).inc()
        self.server.metrics.push_time.labels(short).observe(time.perf_counter() - started)

    def status(self) -> dict[str, Any]:
        """One row of /debug/syncz."""
        return {
            "connection": self.conn_id,
            "proxy": self.proxy.id if self.proxy else None,
            "connected_at": self.connected_at,
            "types": {
                SHORT_NAMES.get(t, t): {
                    "sent": s.sent_version,
                    "acked": s.acked_version,
                    "nacked": s.nacked_version,
                    "error": s.error,
                    "resources": sorted(s.names),
                }
                for t, s in sorted(
                    self.states.items(),
                    key=lambda kv: PUSH_ORDER.index(kv[0]) if kv[0] in PUSH_ORDER else 9,
                )
            },
        }


class AdsServer:
    """Holds the current Generation and every connected stream."""

    def __init__(self, *, builder: Executor, metrics: Metrics) -> None:
        self.builder = builder
        self.metrics = metrics
        self.generation: Generation | None = None
        self.parts = PartCache()
        self.connections: dict[str, Connection] = {}
        self._numbers = itertools.count(1)

    def update(self, snapshot: Snapshot, *, changed_at: float | None = None) -> Generation:
        generation = Generation(snapshot, next(self._numbers), self.parts, self.generation)
        if changed_at is not None:
            generation.created = changed_at
        self.generation = generation
        self.parts.sweep(generation.number)
        for connection in self.connections.values():
            connection.push()
        return generation

    async def stream(
        self,
        requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        connection = Connection(self, context)
        self.connections[connection.conn_id] = connection
        self.metrics.connected.inc()
        writer = asyncio.create_task(
            connection.write_loop(), name=f"xds-writer-{connection.conn_id}"
        )
        try:
            async for message in requests:
                connection.on_request(message)
                if writer.done():
                    break
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        finally:
            writer.cancel()
            del self.connections[connection.conn_id]
            self.metrics.connected.dec()
            proxy = connection.proxy.id if connection.proxy else connection.conn_id
            log.info("proxy %s disconnected", proxy)

    def handler(self) -> grpc.GenericRpcHandler:
        """The ADS service with a bytes-passthrough serializer: responses are pre-encoded."""
        return grpc.method_handlers_generic_handler(
            ADS_SERVICE,
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.stream,
                    request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                    response_serializer=bytes,
                )
            },
        )
