"""Config built once per distinct input and serialized once, shared by every stream.

Three levels of reuse, each keyed by exactly what it is built from. Objects compare by
identity (see model.Ident): unchanged resources keep their objects across snapshots.

- Pieces: the clusters of one service, the endpoints of one cluster, one virtual host, each
  encoded once as protobuf bytes with a digest, keyed by the `*_inputs` functions of
  translate/. Proxies of different namespaces share a piece when its inputs are the same.
- Assemblies: the pieces one group of proxies receives (same namespace; for routes, same
  caller labels and port), by host or cluster name, with the snapshot they reflect. The next
  build patches the last assembly where hosts changed since that snapshot (`changed_hosts`)
  and keeps every other piece, so an edit to one VirtualService rebuilds one virtual host,
  not the mesh.
- Parts and responses: the version and encoded resources of a response, keyed by its proxy
  group and the fingerprints of the inputs in force (`Generation.key`). A stream whose key
  did not change skips that type without building anything; streams with equal keys get one
  shared Response, whose bytes (nonce included) are joined once for all of them.

Versions are digests of piece digests, so a 1 MB response is never hashed as a whole. Building
is CPU work; callers run it on the builder thread, never on the event loop. `Generation.key`
and `Generation.built` are cheap lookups, the only methods meant for the event loop.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from google.protobuf.message import Message

from istiolite.api import VirtualService
from istiolite.api.networking import OutboundMode
from istiolite.discovery.model import Ident, MeshService, Proxy, Snapshot, scoped_services
from istiolite.discovery.translate import clusters, endpoints, listeners, routes
from istiolite.discovery.translate.common import parse_cluster_name

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
# The order of a push matters: clusters before the endpoints they use, listeners before the
# routes they name, so Envoy never waits on (or drops) a reference it has not seen yet.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
SHORT_NAMES = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS"}
# Types whose requests name the resources wanted; for the others an empty list means all.
NAMED_TYPES = frozenset({ENDPOINT, ROUTE})
_RESOURCES_FIELD = 2  # DiscoveryResponse.resources
_VIRTUAL_HOSTS_FIELD = 2  # RouteConfiguration.virtual_hosts
T = TypeVar("T")

# What proxies sharing a part have in common: its kind, then namespace, labels, names...
ProxyGroup = tuple[Hashable, ...]
# A part of a response: its proxy group and the fingerprints of the inputs in force.
PartKey = tuple[ProxyGroup, tuple[Hashable, ...]]
# A response: the parts it is made of.
ResponseKey = tuple[PartKey, ...]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _head(number: int, length: int) -> bytes:
    return _varint(number << 3 | 2) + _varint(length)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length, payload."""
    return _head(number, len(payload)) + payload


def encode_resource(type_url: str, payload: bytes) -> bytes:
    """`DiscoveryResponse.resources` entry (field 2) holding `Any{type_url, value}`."""
    return b"".join(resource_chunks(type_url, [payload]))


def resource_chunks(type_url: str, payload: Sequence[bytes]) -> list[bytes]:
    """`encode_resource` of the joined payload, without joining (copying) the payload."""
    size = sum(map(len, payload))
    type_field = field(1, type_url.encode())
    value_head = _head(2, size)
    head = _head(_RESOURCES_FIELD, len(type_field) + len(value_head) + size)
    return [head + type_field + value_head, *payload]


@dataclass(frozen=True, slots=True)
class Piece:
    """Encoded bytes and their digest, from which versions are made without rehashing."""

    data: bytes
    digest: bytes

    @classmethod
    def of(cls, data: bytes) -> Piece:
        return cls(data, hashlib.blake2b(data, digest_size=8).digest())


def _version(digests: Iterable[bytes]) -> str:
    return hashlib.blake2b(b"".join(digests), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Part:
    """Encoded resources (never joined: the pieces stay shared) and their version."""

    version: str
    chunks: tuple[bytes, ...]
    # Each resource's piece by name, where a response may be sent in part (EDS).
    named: tuple[tuple[str, Piece], ...] = ()

    @classmethod
    def of(
        cls,
        pieces: Sequence[Piece],
        chunks: Iterable[bytes] | None = None,
        *,
        named: tuple[tuple[str, Piece], ...] = (),
    ) -> Part:
        """A part made of pieces; `chunks` when its bytes are more than the pieces' data."""
        data = tuple(p.data for p in pieces) if chunks is None else tuple(chunks)
        return cls(_version(p.digest for p in pieces), data, named)


class Response:
    """One type's response to one class of proxy: its version, nonce and encoded bytes.

    Streams given the same response in a generation share this object, nonce included: a
    nonce only has to tell a stream's responses apart, and one shared body spares a copy of up
    to megabytes per stream (measured: 100 streams of 1 MB take 3x longer with a copy each).
    The bytes are joined on first use, so a proxy that has the version already costs nothing.
    """

    __slots__ = (
        "__weakref__",
        "_body",
        "_changes",
        "chunks",
        "named",
        "nonce",
        "type_url",
        "version",
    )

    def __init__(
        self,
        type_url: str,
        version: str,
        chunks: tuple[bytes, ...],
        nonce: str,
        named: tuple[tuple[str, Piece], ...] = (),
    ) -> None:
        self.type_url, self.version, self.chunks, self.nonce = type_url, version, chunks, nonce
        self.named = named
        self._body: bytes | None = None
        # By the response a proxy holds; weakly, or each response would keep all before it.
        self._changes: weakref.WeakKeyDictionary[Response, Response | None]
        self._changes = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, type_url: str, parts: Sequence[Part], nonce: str) -> Response:
        if len(parts) == 1:
            return cls(type_url, parts[0].version, parts[0].chunks, nonce, parts[0].named)
        version = _version(p.version.encode() for p in parts)
        return cls(type_url, version, tuple(c for p in parts for c in p.chunks), nonce)

    def changes_since(self, held: Response) -> Response | None:
        """This response cut to the resources that differ from `held`'s, for a proxy holding
        those; None when the whole response is as good (most resources changed, or none).

        State-of-the-world EDS lets a response name only some of the subscribed clusters:
        Envoy updates those and keeps the rest, so an endpoint change costs its cluster's
        assignment, not every cluster's. Worked out once per distinct `held`: the streams of
        one proxy group hold the same response.
        """
        if held not in self._changes:
            before = dict(held.named)
            changed = [piece for name, piece in self.named if before.get(name) is not piece]
            worth = 0 < len(changed) <= len(self.named) // 2
            self._changes[held] = (
                Response(self.type_url, self.version, tuple(p.data for p in changed), self.nonce)
                if worth
                else None
            )
        return self._changes[held]

    def body(self) -> bytes:
        """The encoded DiscoveryResponse, joined (copied) once."""
        if self._body is None:
            self._body = b"".join(
                [
                    field(1, self.version.encode()),
                    *self.chunks,
                    field(4, self.type_url.encode()),
                    field(5, self.nonce.encode()),
                ]
            )
        return self._body


@dataclass(frozen=True, slots=True)
class Assembly:
    """The pieces of one proxy group's response by host or cluster name, in response order."""

    snapshot: Snapshot  # the pieces are what this snapshot translates into
    pieces: dict[str, Piece]


class PartCache:
    """Pieces, parts and assemblies, kept while some recent generation uses them."""

    def __init__(self, keep_generations: int = 2) -> None:
        self._parts: dict[Hashable, Any] = {}
        self._used: dict[Hashable, int] = {}
        self._keep = keep_generations
        self._lock = threading.Lock()
        self.built = 0  # parts built, for tests and benchmarks

    def get(self, key: Hashable, generation: int, build: Callable[[], T]) -> T:
        part = self._parts.get(key)
        if part is None:
            part = build()
            self.built += 1
        with self._lock:
            self._parts[key] = part
            self._used[key] = generation
        return part

    def find(self, key: Hashable, generation: int) -> Any:
        """The entry for a key, or None; marks it used."""
        with self._lock:
            found = self._parts.get(key)
            if found is not None:
                self._used[key] = generation
        return found

    def put(self, key: Hashable, generation: int, value: object) -> None:
        with self._lock:
            self._parts[key] = value
            self._used[key] = generation

    def touch(self, key: Hashable, generation: int) -> None:
        """Keep an entry (if any) for now: a connected proxy still needs it."""
        with self._lock:
            if key in self._parts:
                self._used[key] = generation

    def sweep(self, generation: int) -> None:
        with self._lock:
            stale = [k for k, used in self._used.items() if used <= generation - self._keep]
            for key in stale:
                del self._parts[key]
                del self._used[key]

    def __len__(self) -> int:
        return len(self._parts)


class Fingerprint:
    """The identities of a sequence of objects, hashed once; equal when every object is the same."""

    __slots__ = ("_hash", "items")

    def __init__(self, objects: Iterable[object]) -> None:
        self.items = tuple(Ident(o) for o in objects)
        self._hash = hash(self.items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, Fingerprint)
            and other._hash == self._hash
            and other.items == self.items
        )


class Generation:
    """One snapshot of the mesh and the responses built from it so far."""

    def __init__(
        self,
        snapshot: Snapshot,
        number: int,
        parts: PartCache | None = None,
        previous: Generation | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.number = number
        self.created = time.monotonic()
        self.parts = parts if parts is not None else PartCache()
        # What each kind of response depends on; kept from the previous generation when the
        # same objects are in force, so response keys stay equal (and cheap to compare).
        before = previous.snapshot if previous is not None else None
        self.services: Fingerprint = _fingerprint(
            previous.services if previous is not None else None,
            before is not None and before.services is snapshot.services,
            snapshot.services.values(),
        )
        # The services without their endpoints: all that clusters, listeners and routes read.
        self.shapes: Fingerprint = _fingerprint(
            previous.shapes if previous is not None else None,
            before is not None and before.services is snapshot.services,
            (s.shape for s in snapshot.services.values()),
        )
        self.rules: Fingerprint = _fingerprint(
            previous.rules if previous is not None else None,
            before is not None and before.destination_rules is snapshot.destination_rules,
            snapshot.destination_rules,
        )
        self.routes: Fingerprint = _fingerprint(
            previous.routes if previous is not None else None,
            before is not None and before.virtual_services is snapshot.virtual_services,
            snapshot.virtual_services,
        )
        self.tcp_routes: tuple[object, ...] = (
            previous.tcp_routes
            if previous is not None
            and self.services is previous.services
            and self.routes is previous.routes
            else _same(
                previous.tcp_routes if previous is not None else None,
                listeners.outbound_listener_inputs(snapshot),
            )
        )
        # Service lists per scope (and port) depend on the services alone, the Sidecar being in
        # the key: a routing edit keeps the previous generation's.
        self._scopes: dict[Hashable, list[MeshService]] = {}
        self._http_services: dict[tuple[Hashable, int], list[MeshService]] = {}
        if previous is not None and before is not None and before.services is snapshot.services:
            self._scopes, self._http_services = previous._scopes, previous._http_services
        # Responses some stream is still sending, so streams alike share one object and body;
        # `kept` holds the ones built ahead of publishing until the streams have taken them.
        self._responses: weakref.WeakValueDictionary[ResponseKey, Response]
        self._responses = weakref.WeakValueDictionary()
        self.kept: list[Response] = []
        self._nonces = itertools.count(1)
        self._changes: dict[tuple[Ident, bool], frozenset[str] | None] = {}

    def key(self, type_url: str, proxy: Proxy, names: frozenset[str]) -> ResponseKey:
        """What a proxy's response of one type is made from: equal keys give equal responses.

        Cheap (no translation), so a writer can tell on the event loop that nothing it sent
        has changed. Marks the proxy's classes as in use, so their assemblies are kept.
        """
        ns, shapes, snapshot = proxy.namespace, self.shapes, self.snapshot
        keys: ResponseKey = ()
        if type_url == ENDPOINT:
            # The names are an input, not the group: a new subscription (a cluster added)
            # patches the namespace's last assembly instead of starting one.
            keys = ((("eds", ns), (names, self.services, self.rules)),)
        elif type_url == ROUTE:
            rds = ("rds", ns, Ident(snapshot.sidecar(proxy)), snapshot.caller_labels(proxy))
            fingerprints = (shapes, self.rules, self.routes)
            # Route configs are named by port; other names (a client's garbage) get nothing.
            keys = tuple(
                ((*rds, int(name)), fingerprints)
                for name in sorted(names)
                if name.isascii() and name.isdigit()
            )
        elif type_url in (CLUSTER, LISTENER):
            # Outbound config is shared by the proxies of a namespace under the same Sidecar.
            # A workload's inbound config reads its services' shapes, and which services list
            # it as an endpoint (by value: a few tuples).
            scope = Ident(snapshot.sidecar(proxy))
            workload = (ns, proxy.labels, proxy.ips)
            inbound = (shapes, tuple(snapshot.served_by.get(ip, ()) for ip in proxy.ips))
            if type_url == CLUSTER:
                keys = ((("cds", ns, scope), (shapes, self.rules)), (("cds-in", workload), inbound))
            else:
                labels = snapshot.caller_labels(proxy)
                keys = (
                    (("lds", ns, scope, labels), (shapes, self.tcp_routes)),
                    (("lds-in", workload), inbound),
                )
        for group, _ in keys:
            self.parts.touch(("assembly", group), self.number)
        return keys

    def response(
        self,
        type_url: str,
        proxy: Proxy,
        names: frozenset[str],
        key: ResponseKey | None = None,
    ) -> Response:
        """The response of one type for a proxy, built where not cached (builder thread)."""
        key = key if key is not None else self.key(type_url, proxy, names)
        response = self._responses.get(key)
        if response is None:
            parts = []
            for group, fingerprints in key:
                build = partial(_BUILDERS[group[0]], self, group, proxy, names)
                parts.append(self.parts.get((group, fingerprints), self.number, build))
            response = Response.of(type_url, parts, f"{self.number}-{next(self._nonces)}")
            self._responses[key] = response
        return response

    def built(self, key: ResponseKey) -> Response | None:
        """The response for a key if it is built already: cheap, for the event loop."""
        return self._responses.get(key)

    def respond(
        self, type_url: str, proxy: Proxy, names: frozenset[str], sent_version: str | None = None
    ) -> tuple[str, bytes | None]:
        """(version, encoded response) for one proxy and type.

        The body is None when the version equals `sent_version`: the proxy has it already, and
        the (large) body is never joined just to be thrown away.
        """
        response = self.response(type_url, proxy, names)
        if response.version == sent_version:
            return response.version, None
        return response.version, response.body()

    def changed_since(self, earlier: Snapshot, *, routes: bool) -> frozenset[str] | None:
        """`changed_hosts` from an earlier snapshot to this one, computed once per snapshot."""
        key = (Ident(earlier), routes)
        if key not in self._changes:
            self._changes[key] = changed_hosts(
                earlier, self.snapshot, routes=routes, targets=self._route_targets
            )
        return self._changes[key]

    def _route_targets(self, vs: VirtualService) -> frozenset[str]:
        key = ("targets", self.snapshot.domain_suffix, Ident(vs))
        return self.parts.get(key, self.number, lambda: route_targets(self.snapshot, vs))

    # --- building (builder thread) -------------------------------------------------------

    def _piece(self, key: Hashable, build: Callable[[], Iterable[Message]], type_url: str) -> Piece:
        return self.parts.get(key, self.number, lambda: Piece.of(_encode(type_url, build())))

    def _assemble(
        self,
        group: ProxyGroup,
        items: Iterable[tuple[str, str]],
        build: Callable[[str], Piece],
        *,
        routes: bool,
    ) -> dict[str, Piece]:
        """The pieces for (item, host) pairs: the last assembly's where the host is unchanged.

        `routes` says whether the pieces depend on VirtualServices (see `changed_hosts`).
        """
        earlier: Assembly | None = self.parts.find(("assembly", group), self.number)
        changed = self.changed_since(earlier.snapshot, routes=routes) if earlier else None
        kept = earlier.pieces if earlier is not None and changed is not None else {}
        pieces: dict[str, Piece] = {}
        for item, host in items:
            old = kept.get(item)
            unchanged = old is not None and changed is not None and host not in changed
            pieces[item] = old if unchanged and old is not None else build(item)
        self.parts.put(("assembly", group), self.number, Assembly(self.snapshot, pieces))
        return pieces

    def _outbound_clusters(self, group: ProxyGroup, proxy: Proxy, names: frozenset[str]) -> Part:
        snap, ns = self.snapshot, proxy.namespace
        static = self._piece(("cds-static",), clusters.static_clusters, CLUSTER)

        def build(host: str) -> Piece:
            service = snap.services[host]
            return self._piece(
                ("cds", clusters.cluster_inputs(snap, ns, service)),
                lambda: clusters.service_clusters(snap, ns, service),
                CLUSTER,
            )

        hosts = ((s.hostname, s.hostname) for s in self._scope(proxy)[1])
        pieces = self._assemble(group, hosts, build, routes=False)
        return Part.of([static, *pieces.values()])

    def _inbound_clusters(self, group: ProxyGroup, proxy: Proxy, names: frozenset[str]) -> Part:
        data = _encode(CLUSTER, clusters.inbound_clusters(self.snapshot, proxy))
        return Part.of([Piece.of(data)])

    def _endpoints(self, group: ProxyGroup, proxy: Proxy, names: frozenset[str]) -> Part:
        snap, ns = self.snapshot, proxy.namespace

        def build(name: str) -> Piece:
            return self._piece(
                ("eds", endpoints.endpoint_inputs(snap, ns, name)),
                lambda: _assignments(snap, ns, name),
                ENDPOINT,
            )

        # The names in order with their hosts, worked out once per subscription (names are
        # interned by the server, so streams alike hold the same set).
        items = self.parts.get(
            ("eds-items", Ident(names)),
            self.number,
            lambda: [(name, _cluster_host(name)) for name in sorted(names)],
        )
        pieces = self._assemble(group, items, build, routes=False)
        return Part.of(list(pieces.values()), named=tuple(pieces.items()))

    def _outbound_listeners(self, group: ProxyGroup, proxy: Proxy, names: frozenset[str]) -> Part:
        data = _encode(LISTENER, listeners.outbound_listeners(self.snapshot, proxy))
        return Part.of([Piece.of(data)])

    def _inbound_listener(self, group: ProxyGroup, proxy: Proxy, names: frozenset[str]) -> Part:
        data = _encode(LISTENER, [listeners.inbound_listener(self.snapshot, proxy)])
        return Part.of([Piece.of(data)])

    def _route_config(self, group: ProxyGroup, proxy: Proxy, names: frozenset[str]) -> Part:
        """One RouteConfiguration (named by its port) of virtual hosts, most kept as they were."""
        snap, port = self.snapshot, int(str(group[-1]))
        services = self._http_services_on(port, proxy)
        if not services:
            return Part.of([])  # no such route config

        def build(host: str) -> Piece:
            service = snap.services[host]
            return self.parts.get(
                ("vhost", routes.virtual_host_inputs(snap, proxy, service, port)),
                self.number,
                lambda: Piece.of(_virtual_host(snap, proxy, service, port)),
            )

        hosts = ((s.hostname, s.hostname) for s in services)
        shell = self.parts.get(
            ("rds-shell", port),
            self.number,
            lambda: Piece.of(routes.route_config_shell(port).SerializeToString()),
        )
        fallback = _FALLBACK_HOSTS[snap.outbound_mode(proxy)]
        pieces = [shell, *self._assemble(group, hosts, build, routes=True).values(), fallback]
        return Part.of(pieces, resource_chunks(ROUTE, [p.data for p in pieces]))

    def _scope(self, proxy: Proxy) -> tuple[Hashable, list[MeshService]]:
        """The services a proxy calls, and a key for that list (None: every service).

        Listed once per Sidecar and namespace in a generation; proxies without a scoping
        Sidecar share one list, whatever their namespace.
        """
        sidecar = self.snapshot.sidecar(proxy)
        key = (
            None
            if sidecar is None or not sidecar.spec.egress
            else (Ident(sidecar), proxy.namespace)
        )
        if key not in self._scopes:
            self._scopes[key] = scoped_services(self.snapshot, sidecar, proxy.namespace)
        return key, self._scopes[key]

    def _http_services_on(self, port: int, proxy: Proxy) -> list[MeshService]:
        scope, services = self._scope(proxy)
        cache = self._http_services
        if (None, port) not in cache:
            cache[None, port] = routes.http_services(self.snapshot.services.values(), port)
        if (scope, port) not in cache:  # the port's list filtered: cheaper than asking services
            names = {s.hostname for s in services}
            cache[scope, port] = [s for s in cache[None, port] if s.hostname in names]
        return cache[scope, port]


# How each kind of part is built (functions, not bound methods: no cycle through Generation).
_BUILDERS: dict[Hashable, Callable[[Generation, ProxyGroup, Proxy, frozenset[str]], Part]] = {
    "cds": Generation._outbound_clusters,
    "cds-in": Generation._inbound_clusters,
    "eds": Generation._endpoints,
    "lds": Generation._outbound_listeners,
    "lds-in": Generation._inbound_listener,
    "rds": Generation._route_config,
}


def changed_hosts(
    old: Snapshot,
    new: Snapshot,
    *,
    routes: bool = True,
    targets: Callable[[VirtualService], frozenset[str]] | None = None,
) -> frozenset[str] | None:
    """Hosts whose translation may differ between two snapshots; None when any may.

    With `routes` false, only what clusters and endpoints read is compared: each host's
    service and DestinationRules. With it, also what virtual hosts read: VirtualServices, the
    hosts they route to, and the mesh-wide facts that shape every virtual host. `targets`
    gives the hosts a VirtualService routes to (a cache of `route_targets`).
    """
    targets = targets or partial(route_targets, new)
    if old is new:
        return frozenset()
    if old.domain_suffix != new.domain_suffix:
        return None
    indexes: list[tuple[Any, Any]] = [
        (old.services, new.services),
        (old.rules_by_host, new.rules_by_host),
    ]
    if routes:
        if (
            old.source_label_keys != new.source_label_keys
            or old.shared_cluster_ips != new.shared_cluster_ips
            or [Ident(v) for _, v in old.wildcard_routes]
            != [Ident(v) for _, v in new.wildcard_routes]
        ):
            return None
        indexes.append((old.routes_by_host, new.routes_by_host))
    changed: set[str] = set()
    for old_index, new_index in indexes:
        if old_index is new_index:
            continue  # kept whole by build_snapshot: nothing in it changed
        for host in old_index.keys() | new_index.keys():
            if not _identical(old_index.get(host), new_index.get(host)):
                changed.add(host)
    if not routes:
        return frozenset(changed)
    # A host routing to a changed host names its ports and rules in its routes: changed too.
    for host, virtual_services in new.routes_by_host.items():
        if any(targets(vs) & changed for vs in virtual_services):
            changed.add(host)
    if any(targets(vs) & changed for _, vs in new.wildcard_routes):
        return None  # which hosts a wildcard route serves is not indexed: take them all
    return frozenset(changed)


def route_targets(snapshot: Snapshot, vs: VirtualService) -> frozenset[str]:
    """The hosts a VirtualService's HTTP routes send (or mirror) requests to."""
    ns = vs.meta.namespace
    found = {snapshot.resolve(d.destination.host, ns) for http in vs.spec.http for d in http.route}
    found |= {snapshot.resolve(http.mirror.host, ns) for http in vs.spec.http if http.mirror}
    return frozenset(found)


def _identical(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    return a is b


def _same(old: T | None, new: T) -> T:
    return old if old is not None and old == new else new


def _fingerprint(
    earlier: Fingerprint | None, unchanged: bool, objects: Iterable[object]
) -> Fingerprint:
    """`earlier` when its objects are known to be unchanged or turn out the same; else anew."""
    if earlier is not None and unchanged:
        return earlier
    return _same(earlier, Fingerprint(objects))


def _cluster_host(name: str) -> str:
    parsed = parse_cluster_name(name)
    return parsed[3] if parsed else ""


def _encode(type_url: str, messages: Iterable[Message]) -> bytes:
    return b"".join(encode_resource(type_url, m.SerializeToString()) for m in messages)


def _assignments(snap: Snapshot, ns: str, name: str) -> list[Message]:
    found = endpoints.cluster_load_assignment(snap, ns, name)
    return [found] if found is not None else []


_FALLBACK_HOSTS = {
    mode: Piece.of(field(_VIRTUAL_HOSTS_FIELD, routes.fallback_host(mode).SerializeToString()))
    for mode in OutboundMode
}


def _virtual_host(snap: Snapshot, proxy: Proxy, service: MeshService, port: int) -> bytes:
    return field(
        _VIRTUAL_HOSTS_FIELD, routes.virtual_host(snap, proxy, service, port).SerializeToString()
    )
