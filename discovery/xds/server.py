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

Requests are input from the network: the protocol rules (protocol.py) and node ids (node.py)
are checked in pure functions; what a client gets wrong is logged once per proxy and kind,
repeats summarised (notices.py), and only a stream that cannot be served (no node, a bad or
changing node id, too many names) is closed, with a gRPC status that says why.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import Executor
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format

from istiolite.discovery.metrics import Metrics, metric_type
from istiolite.discovery.model import Proxy, Snapshot
from istiolite.discovery.xds.cache import (
    CLUSTER,
    ENDPOINT,
    NAMED_TYPES,
    PUSH_ORDER,
    ROUTE,
    SHORT_NAMES,
    Generation,
    PartCache,
    Response,
    ResponseKey,
)
from istiolite.discovery.xds.node import NodeError, parse_node
from istiolite.discovery.xds.notices import Repeats
from istiolite.discovery.xds.protocol import (
    Request,
    TypeState,
    Verdict,
    clusters_sent,
    endpoints_sent_whole,
    on_request,
    sent,
)

log = logging.getLogger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_KEEP_WARMED = 2.0  # seconds a generation keeps responses built ahead, after it is published
# Bounds on what one request may ask. Envoy names one EDS resource per cluster (tens of
# thousands in the largest meshes) and one RDS resource per HTTP port; past these a request is
# not a proxy's, and would cost a build per name.
MAX_NAMES = {ENDPOINT: 200_000, ROUTE: 10_000}
MAX_ERROR = 4096  # characters of an error_detail kept and shown; Envoy's list every resource
HELD_AFTER = 2.0  # seconds after Envoy took the endpoints that freed a CDS answer (`_held`)
MAX_OTHER_TYPES = 8  # types istiolite does not serve that one stream may ask for
EMPTY_VERSION = "empty"  # the version of the response to a type istiolite does not serve
T = TypeVar("T")


class RequestError(ValueError):
    """A request that cannot be served; its stream is closed with this message."""


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
        # Who to name in the log before the node is known: the peer's address without its
        # port, so a client reconnecting over and over is one key (notices.py).
        self.peer_host = context.peer().rpartition(":")[0] or context.peer()
        self.connected_at = time.time()
        self.proxy: Proxy | None = None
        self.states: dict[str, TypeState] = {}
        self.pending: set[str] = set()  # types with a request that must be answered
        self.awaiting: dict[str, _Awaiting] = {}
        self.keys: dict[str, ResponseKey] = {}  # per type, the key of the last response given
        # The EDS response whose assignments the proxy holds; None: unknown, send them all.
        self.endpoints_held: Response | None = None
        self._last_names: dict[str, tuple[list[str], frozenset[str]]] = {}
        # The whole EDS response sent after the last CDS one, and a CDS version Envoy still
        # held after taking it: see `_held`.
        self.endpoints_after_clusters = ""
        self.held = ""
        self.connection_closed = False
        # Types istiolite does not serve: answered with no resources, as Istio does.
        self.others: dict[str, TypeState] = {}
        self.pending_others: set[str] = set()
        self.wake = asyncio.Event()

    def push(self) -> None:
        self.wake.set()

    def on_request(self, message: discovery_pb2.DiscoveryRequest) -> None:
        """Apply one request. Raises RequestError (or NodeError) when the stream must close."""
        proxy = self._identify(message)
        type_url = message.type_url
        if type_url not in SHORT_NAMES:
            self._other_type(type_url, message)
            return
        short = SHORT_NAMES[type_url]
        names: frozenset[str] = frozenset()
        if type_url in NAMED_TYPES:
            if len(message.resource_names) > MAX_NAMES[type_url]:
                raise RequestError(
                    f"{short} request names {len(message.resource_names)} resources; "
                    f"at most {MAX_NAMES[type_url]} are served on one stream"
                )
            names = self._names(type_url, message)
        request = _request(message, names)
        if request.error and not request.nonce:
            self.tell(
                ("error without nonce", short),
                "proxy %s sent a %s error_detail without "
                "a response_nonce, so it rejects nothing sent: ignored",
                proxy.id,
                short,
            )
        outcome = on_request(self.states.get(type_url), request)
        self.states[type_url] = outcome.state
        if outcome.verdict is Verdict.NACK:
            self._rejected(type_url, outcome.rejected, request.error)
        elif outcome.verdict is Verdict.UNKNOWN_NONCE:
            self.tell(
                ("unknown nonce", short),
                "proxy %s answered a %s response this stream never sent (nonce %s): ignored",
                proxy.id,
                short,
                _printable(request.nonce, 64),
            )
        elif outcome.verdict is Verdict.ACK:
            if type_url == ENDPOINT and request.nonce == self.endpoints_after_clusters:
                # Envoy sends the CDS answer freed by these endpoints about when it ACKs them.
                asyncio.get_running_loop().call_later(HELD_AFTER, self._held)
            awaiting = self.awaiting.pop(type_url, None)
            if awaiting is not None and awaiting.nonce == request.nonce:
                self.server.metrics.convergence.observe(time.monotonic() - awaiting.changed_at)
        if outcome.respond:
            self.pending.add(type_url)
            self.wake.set()

    def _identify(self, message: discovery_pb2.DiscoveryRequest) -> Proxy:
        """The stream's proxy, from its first request; a stream serves one proxy only."""
        if self.proxy is None:
            if not message.HasField("node"):
                raise NodeError(
                    "the first request on a stream must carry the node (Node.id and metadata); "
                    "this one has none"
                )
            self.proxy = parse_node(message.node.id, _metadata(message.node))
            log.info("proxy %s connected (%s)", self.proxy.id, self.conn_id)
        elif message.HasField("node") and message.node.id and message.node.id != self.proxy.id:
            raise NodeError(
                f"node id changed on the stream from {self.proxy.id!r} to "
                f"{_printable(message.node.id, 120)!r}: a stream serves one proxy; "
                "reconnect instead"
            )
        return self.proxy

    def _rejected(self, type_url: str, version: str, error: str) -> None:
        """A NACK: counted and logged once per proxy, type and version; repeats summarised."""
        if type_url == ENDPOINT:
            self.endpoints_held = None  # it kept what it had before: resend everything
        short = SHORT_NAMES.get(type_url, "other")
        assert self.proxy is not None
        first = self.tell(
            ("rejected", short, version),
            "proxy %s rejected %s version %s: %s",
            self.proxy.id,
            short,
            version,
            _printable(error, MAX_ERROR),
        )
        if first:
            self.server.metrics.rejects.labels(metric_type(short)).inc()

    def _held(self) -> None:
        """Envoy took every endpoint sent after a CDS response and still does not answer it.

        Envoy sends no CDS answer, ACK or NACK, while a cluster warms, and the EDS response
        just ACKed gave every warming cluster its endpoints. Envoy 1.40 keeps a cluster it
        rejected for a maglev table size that is not prime warming for good, so that NACK
        never comes, nor any later CDS answer on this stream (docs/decisions.md). What can be
        seen of it is this silence: it is shown and logged, not counted as a reject.
        """
        clusters = self.states.get(CLUSTER)
        if self.proxy is None or self.connection_closed:
            return
        if clusters is None or clusters.sent_version in (
            clusters.acked_version,
            clusters.nacked_version,
        ):
            return
        self.held = clusters.sent_version
        self.tell(
            ("held", "CDS", self.held),
            "proxy %s has not answered CDS version %s though it took the endpoints sent after "
            "it: Envoy holds CDS answers while clusters warm, and keeps some clusters it rejects "
            "warming for good (its log says which)",
            self.proxy.id,
            self.held,
        )

    def _other_type(self, type_url: str, message: discovery_pb2.DiscoveryRequest) -> None:
        """A type istiolite does not serve: logged, and answered with no resources as Istio
        does (a client waiting on it is not left waiting); the stream goes on."""
        assert self.proxy is not None
        shown = _printable(type_url, 200)
        if type_url not in self.others and (not type_url or len(self.others) >= MAX_OTHER_TYPES):
            self.tell(
                ("unserved type",),
                "proxy %s asked for type %r: not served, "
                "and not answered (empty, or past %d unknown types on one stream)",
                self.proxy.id,
                shown,
                MAX_OTHER_TYPES,
                level=logging.ERROR,
            )
            return
        if type_url not in self.others:
            # One key per proxy, not per type: a client can make up types without end.
            self.tell(
                ("unknown type",),
                "proxy %s asked for type %r, which istiolite "
                "does not serve: answered with no resources",
                self.proxy.id,
                shown,
                level=logging.ERROR,
            )
        outcome = on_request(self.others.get(type_url), _request(message, frozenset()))
        self.others[type_url] = outcome.state
        if outcome.verdict is Verdict.NACK:
            self.tell(
                ("rejected", "unknown type"),
                "proxy %s rejected the empty response for type %r: %s",
                self.proxy.id,
                shown,
                _printable(outcome.state.error, MAX_ERROR),
            )
        if outcome.respond:
            self.pending_others.add(type_url)
            self.wake.set()

    @property
    def who(self) -> str:
        return self.proxy.id if self.proxy is not None else self.peer_host

    def tell(
        self, what: tuple[Hashable, ...], message: str, *args: object, level: int = logging.WARNING
    ) -> bool:
        """Log something this proxy did once, repeats summarised; True the first time."""
        note = self.server.repeats.note((self.who, *what))
        if note.first:
            log.log(level, message, *args)
        elif note.repeats:
            log.log(
                level, message + " (%d more times since it was last logged)", *args, note.repeats
            )
        return note.first

    async def write_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            generation = self.server.generation
            if self.proxy is None:
                continue
            try:
                if generation is not None:
                    await self._push(generation, self.proxy)
                await self._answer_others()
            except Exception as e:
                # Not the stream's end: a bug on one push must not silence the proxy for good.
                self.tell(
                    ("writer", type(e).__name__),
                    "writing to proxy %s failed: %r",
                    self.proxy.id,
                    e,
                    level=logging.ERROR,
                )

    async def _answer_others(self) -> None:
        for type_url in sorted(self.pending_others):
            self.pending_others.discard(type_url)
            nonce = f"x{next(self.server.nonces)}"
            self.others[type_url] = sent(self.others[type_url], version=EMPTY_VERSION, nonce=nonce)
            body = discovery_pb2.DiscoveryResponse(
                version_info=EMPTY_VERSION, type_url=type_url, nonce=nonce
            ).SerializeToString()
            await self.context.write(body)

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
                self.server.metrics.build_errors.labels(metric_type(short)).inc()
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
        if type_url == CLUSTER:
            # Envoy warms the clusters this changes until their endpoints arrive, and holds its
            # CDS answer until then: they must get every assignment, and soon (protocol.py).
            self.endpoints_held = None
            self.endpoints_after_clusters = ""
            if ENDPOINT in self.states:
                self.states[ENDPOINT] = clusters_sent(self.states[ENDPOINT])
        elif type_url == ENDPOINT:
            whole = response
            response = self._endpoint_changes(whole, must=must)
            if response is whole:
                self.states[ENDPOINT] = endpoints_sent_whole(self.states[ENDPOINT])
                self.endpoints_after_clusters = self.endpoints_after_clusters or response.nonce
        body = response.body()
        await self.context.write(body)
        short = SHORT_NAMES.get(type_url, type_url)
        log.debug("sent %s %s (%d bytes) to %s", short, version, len(body), proxy.id)
        self.server.metrics.pushes.labels(metric_type(short)).inc()
        self.server.metrics.push_time.labels(metric_type(short)).observe(
            time.perf_counter() - started
        )

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
                    "nacks": s.nacks,
                    # Sent, and neither ACKed nor NACKed though Envoy took what followed it.
                    "held": t == CLUSTER
                    and s.sent_version == self.held
                    and s.sent_version not in (s.acked_version, s.nacked_version),
                    # A count, not the names: with thousands of clusters per proxy the names
                    # would make this page megabytes long (see /debug/config_dump for them).
                    "resources": len(s.names),
                }
                for t, s in [
                    *sorted(self.states.items(), key=lambda kv: PUSH_ORDER.index(kv[0])),
                    *sorted(self.others.items()),
                ]
            },
        }


def _request(message: discovery_pb2.DiscoveryRequest, names: frozenset[str]) -> Request:
    error = message.error_detail.message if message.HasField("error_detail") else ""
    if message.HasField("error_detail") and not error:
        error = f"(no message; code {message.error_detail.code})"
    if len(error) > MAX_ERROR:
        error = f"{error[:MAX_ERROR]}... ({len(error) - MAX_ERROR} more characters)"
    return Request(nonce=message.response_nonce, names=names, error=error)


def _metadata(node: Any) -> dict[str, Any]:
    try:
        return dict(json_format.MessageToDict(node.metadata))
    except Exception as e:  # a Struct always converts; this is belt and braces for the edge
        raise NodeError(f"node metadata cannot be read: {e}") from e


def _printable(text: str, limit: int) -> str:
    """Client text for one log line: control characters escaped, at most `limit` characters."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
        self.repeats = Repeats()  # what proxies did wrong, logged once (notices.py)
        self.nonces = itertools.count(1)  # for responses to types istiolite does not serve

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
        except ValueError as e:  # NodeError, RequestError: this stream cannot be served
            connection.tell(
                ("closed", type(e).__name__), "closing the stream of %s: %s", connection.who, e
            )
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        finally:
            writer.cancel()
            connection.connection_closed = True
            del self.connections[connection.conn_id]
            self.metrics.connected.dec()
            who = connection.who
            for key, repeats in self.repeats.flush(who):
                log.warning("proxy %s: %d more of %s before it disconnected", who, repeats, key[1:])
            # Streams that never said who they are are not worth a line each: a client can
            # open thousands.
            log.log(
                logging.INFO if connection.proxy else logging.DEBUG, "proxy %s disconnected", who
            )

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
