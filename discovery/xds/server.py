"""The ADS stream server (state of the world) on grpc.aio.

Each stream gets a reader (requests in, protocol rules applied) and one writer task (responses
out), so a slow Envoy only slows its own stream. A push is a wake-up: the writer builds what
is current when it runs, which coalesces any number of pushes that arrive while it is busy.
Responses are encoded once and their bytes shared by every stream they go to (see cache.py).

A push wakes every stream at once. Each writer first compares, on the event loop, the key of
each type (what its response is made from) with the key it last answered: a type whose
inputs did not change costs nothing more. What is left goes to the single builder thread in
one batch for all streams (`Batch`), where the first stream of a kind builds and the others
find it built. Most of that was built already: a generation is warmed for the connected
proxies (`AdsServer.warm`) while its change is still being debounced.

Endpoints go out incrementally, as Istio's do: once a proxy holds a full EDS response, a push
names only the assignments that changed (state-of-the-world EDS lets a response name some of
the subscribed clusters; Envoy keeps the others). A request, or a NACK, brings back a full one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format

from istiolite.discovery.metrics import Metrics
from istiolite.discovery.model import Proxy, Snapshot
from istiolite.discovery.xds.cache import (
    ENDPOINT,
    NAMED_TYPES,
    PUSH_ORDER,
    SHORT_NAMES,
    Generation,
    PartCache,
    Response,
    ResponseKey,
)
from istiolite.discovery.xds.protocol import Request, TypeState, Verdict, on_request, sent

log = logging.getLogger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_KEEP_WARMED = 2.0  # seconds a generation keeps responses built ahead, after it is published
T = TypeVar("T")


class Batch:
    """Runs calls on the builder thread: all the calls made in one turn of the loop, one hop.

    Writers woken by one push all ask in the same turn; one thread switch for all of them
    instead of one each keeps the event loop free to write, and keeps the calls in order.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._calls: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._calls:
            loop.call_soon(self._flush)
        self._calls.append((call, future))
        return await future

    def _flush(self) -> None:
        calls, self._calls = self._calls, []
        try:
            done = self.executor.submit(_run_all, [call for call, _ in calls])
        except RuntimeError as e:  # the executor is shut down: the server is stopping
            for _, future in calls:
                if not future.done():
                    future.set_exception(e)
            return
        loop = asyncio.get_running_loop()
        done.add_done_callback(lambda d: loop.call_soon_threadsafe(_settle, calls, d))


def _run_all(calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    for call in calls:
        try:
            results.append((True, call()))
        except Exception as e:
            results.append((False, e))
    return results


def _settle(
    calls: list[tuple[Callable[[], Any], asyncio.Future[Any]]],
    done: ThreadFuture[list[tuple[bool, Any]]],
) -> None:
    error = done.exception()
    results = done.result() if error is None else [(False, error)] * len(calls)
    for (_, future), (ok, value) in zip(calls, results, strict=True):
        if future.done():
            continue  # the writer was cancelled: its stream is gone
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


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
        self.keys: dict[str, ResponseKey] = {}  # per type, the key of the last response given
        # The EDS response whose assignments the proxy holds; None: unknown, send them all.
        self.endpoints_held: Response | None = None
        self._last_names: dict[str, tuple[list[str], frozenset[str]]] = {}
        self.wake = asyncio.Event()

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
        names = self._names(type_url, message) if type_url in NAMED_TYPES else frozenset()
        request = Request(
            version_info=message.version_info,
            nonce=message.response_nonce,
            names=names,
            error=message.error_detail.message if message.HasField("error_detail") else "",
        )
        state, verdict, respond = on_request(self.states.get(type_url), request)
        self.states[type_url] = state
        if verdict is Verdict.NACK:
            if type_url == ENDPOINT:
                self.endpoints_held = None  # it kept what it had before: resend everything
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
            if generation is not None and self.proxy is not None:
                await self._push(generation, self.proxy)

    async def _push(self, generation: Generation, proxy: Proxy) -> None:
        """Answer every type whose inputs changed or that Envoy asked for, in push order."""
        started = time.perf_counter()
        wanted: dict[str, tuple[ResponseKey, bool]] = {}
        for type_url in PUSH_ORDER:
            state = self.states.get(type_url)
            if state is None:
                continue  # Envoy has not asked for this type (yet)
            must = type_url in self.pending
            self.pending.discard(type_url)
            key = generation.key(type_url, proxy, state.names)
            if must or key != self.keys.get(type_url):
                wanted[type_url] = (key, must)
        if not wanted:
            return
        built: dict[str, Response | Exception | None] = {
            t: generation.built(key) for t, (key, _) in wanted.items()
        }
        if not all(built.values()):  # not warmed ahead: build on the builder thread
            asked = [
                (t, self.states[t].names, key, None if must else self.states[t].sent_version)
                for t, (key, must) in wanted.items()
            ]
            built.update(await self.server.batch.run(lambda: _responses(generation, proxy, asked)))
        for type_url, (key, must) in wanted.items():
            response = built[type_url]
            assert response is not None
            if isinstance(response, Exception):
                # A translation bug must not take the stream down: Envoy keeps its last config.
                short = SHORT_NAMES.get(type_url, type_url)
                self.server.metrics.build_errors.labels(short).inc()
                log.error(
                    "building %s for proxy %s failed",
                    short,
                    proxy.id,
                    exc_info=response,
                )
                continue
            self.keys[type_url] = key
            await self._send(generation, proxy, response, must=must, started=started)

    async def _send(
        self,
        generation: Generation,
        proxy: Proxy,
        response: Response,
        *,
        must: bool,
        started: float,
    ) -> None:
        type_url, version = response.type_url, response.version
        state = self.states[type_url]
        if not must and version == state.sent_version:
            return  # the proxy has this already
        # Record before writing: Envoy may ACK before write() returns.
        self.states[type_url] = sent(state, version=version, nonce=response.nonce)
        if not must:
            self.awaiting[type_url] = _Awaiting(nonce=response.nonce, changed_at=generation.created)
        if type_url == ENDPOINT:
            response = self._endpoint_changes(response, must=must)
        body = response.body()
        await self.context.write(body)
        short = SHORT_NAMES.get(type_url, type_url)
        log.debug("sent %s %s (%d bytes) to %s", short, version, len(body), proxy.id)
        self.server.metrics.pushes.labels(short).inc()
        self.server.metrics.push_time.labels(short).observe(time.perf_counter() - started)

    def _names(self, type_url: str, message: discovery_pb2.DiscoveryRequest) -> frozenset[str]:
        """The request's resource names, interned; its last set when they are the same.

        Every ACK repeats the subscription (thousands of EDS names): comparing it with the last
        list costs half of building and interning a set, on the event loop, for each proxy.
        """
        last = self._last_names.get(type_url)
        if last is not None and message.resource_names == last[0]:
            return last[1]
        raw = list(message.resource_names)
        names = frozenset(raw)
        names = self.server.names.setdefault(names, names)
        # One list per distinct set, shared like the set: a list per stream would be 100,000s
        # of strings at scale. A proxy listing the names in another order only compares unequal.
        self._last_names[type_url] = (self.server.name_lists.setdefault(names, raw), names)
        return names

    def _endpoint_changes(self, response: Response, *, must: bool) -> Response:
        """What to send of an EDS response: the changed assignments when pushing a change to a
        proxy known to hold the rest (Istio's incremental EDS), everything when it asked."""
        held, self.endpoints_held = self.endpoints_held, response
        if must or held is None:
            return response
        return response.changes_since(held) or response

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
                    # A count, not the names: with thousands of clusters per proxy the names
                    # would make this page megabytes long (see /debug/config_dump for them).
                    "resources": len(s.names),
                }
                for t, s in sorted(
                    self.states.items(),
                    key=lambda kv: PUSH_ORDER.index(kv[0]) if kv[0] in PUSH_ORDER else 9,
                )
            },
        }


def _responses(
    generation: Generation,
    proxy: Proxy,
    asked: list[tuple[str, frozenset[str], ResponseKey, str | None]],
) -> dict[str, Response | Exception]:
    """The responses of several types for one proxy; a failure stays with its own type.

    Bodies are joined here, off the event loop, unless the proxy has that version already.
    """
    out: dict[str, Response | Exception] = {}
    for type_url, names, key, sent_version in asked:
        try:
            response = out[type_url] = generation.response(type_url, proxy, names, key)
            if response.version != sent_version:
                response.body()
        except Exception as e:
            out[type_url] = e
    return out


@dataclass(slots=True)
class _Wanted:
    """A response to build ahead: for whom, and how many streams will send it."""

    type_url: str
    proxy: Proxy
    state: TypeState
    streams: int = 0


def _warm(generation: Generation, wanted: dict[ResponseKey, _Wanted]) -> None:
    for key, want in wanted.items():
        try:
            response = generation.response(want.type_url, want.proxy, want.state.names, key)
        except Exception:
            continue  # the writer builds it again and reports the error
        if want.streams > 1 and response.version != want.state.sent_version:
            response.body()
            generation.kept.append(response)


class AdsServer:
    """Holds the current Generation and every connected stream."""

    def __init__(self, *, builder: Executor, metrics: Metrics) -> None:
        self.builder = builder
        self.batch = Batch(builder)
        self.metrics = metrics
        self.generation: Generation | None = None
        self.parts = PartCache()
        self.connections: dict[str, Connection] = {}
        # One object per distinct set of subscribed names (EDS names thousands of clusters):
        # keys holding it compare by identity, and proxies alike share it.
        self.names: dict[frozenset[str], frozenset[str]] = {}
        self.name_lists: dict[frozenset[str], list[str]] = {}  # each set's names as first listed
        self._numbers = itertools.count(1)

    def next_generation(self, snapshot: Snapshot) -> Generation:
        """A generation of a snapshot, to be warmed and published; not served before that."""
        return Generation(snapshot, next(self._numbers), self.parts, self.generation)

    async def warm(self, generation: Generation) -> None:
        """Build, before it is published, what connected proxies will ask of a generation.

        Run while a change is debounced, this takes translation off the path from publishing
        to writing. Each distinct response is built once; only those that changed for some
        proxy are. Responses shared by several streams are also encoded, and kept until the
        streams have taken them, so their writers find them without a trip to the builder.
        """
        wanted: dict[ResponseKey, _Wanted] = {}
        for connection in self.connections.values():
            if connection.proxy is None:
                continue
            for type_url, state in connection.states.items():
                key = generation.key(type_url, connection.proxy, state.names)
                if key != connection.keys.get(type_url):
                    found = wanted.setdefault(key, _Wanted(type_url, connection.proxy, state))
                    found.streams += 1
        if wanted:
            await self.batch.run(lambda: _warm(generation, wanted))

    def publish(self, generation: Generation, *, changed_at: float | None = None) -> None:
        """Serve a generation from now on, and wake every stream to send what changed."""
        if changed_at is not None:
            generation.created = changed_at
        if generation.kept:  # the streams take them in the next few milliseconds
            asyncio.get_running_loop().call_later(_KEEP_WARMED, generation.kept.clear)
        self.generation = generation
        self.parts.sweep(generation.number)
        self.names = {
            s.names: s.names for c in self.connections.values() for s in c.states.values()
        }
        self.name_lists = {n: raw for n, raw in self.name_lists.items() if n in self.names}
        for connection in self.connections.values():
            connection.push()

    def update(self, snapshot: Snapshot, *, changed_at: float | None = None) -> Generation:
        generation = self.next_generation(snapshot)
        self.publish(generation, changed_at=changed_at)
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
