"""Config built once per distinct input and serialized once, shared by every stream.

Two levels of reuse:

- Parts (`PartCache`, kept across generations): the clusters of one service, the endpoints of
  one cluster, the virtual host of one service, each encoded once as protobuf bytes and keyed
  by exactly what it was built from (see the `*_inputs` functions of translate/). Unchanged
  resources keep their objects across snapshots, so after an edit to one VirtualService only
  that host's virtual host is rebuilt, not the mesh.
- Responses (per Generation): the joined bytes and version of a whole response, keyed by what
  makes proxies differ (namespace, the labels routes look at, subscribed names), so proxies
  alike share one response body. Only the nonce is added per stream.

Building is CPU work; callers run it on the builder thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from functools import partial
from typing import Any, TypeVar

from google.protobuf.message import Message
from istiolite.discovery.model import Ident, MeshService, Proxy, Snapshot
from istiolite.discovery.translate import clusters, endpoints, listeners, routes

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
_VIRTUAL_HOSTS_FIELD = 2  # RouteConfiguration.virtual_hosts
T = TypeVar("T")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_resource(type_url: str, payload: bytes) -> bytes:
    """`DiscoveryResponse.resources` entry (field 2) holding `Any{type_url, value}`."""
    return field(2, field(1, type_url.encode()) + field(2, payload))


def with_nonce(body: bytes, nonce: str) -> bytes:
    """Add the per-stream nonce (field 5) to a shared response body."""
    return body + field(5, nonce.encode())


class PartCache:
    """Encoded pieces of configuration, kept while some recent generation uses them."""

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
        return part  # type: ignore[no-any-return]

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
        return self is other or (isinstance(other, Fingerprint) and other.items == self.items)


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
        # same objects are in force, so its assembled responses are found again by identity.
        self.services = _same(
            previous and previous.services, Fingerprint(snapshot.services.values())
        )
        self.rules = _same(previous and previous.rules, Fingerprint(snapshot.destination_rules))
        self.routes = _same(previous and previous.routes, Fingerprint(snapshot.virtual_services))
        # Route configs are rebuilt host by host: which hosts changed, and last time's hosts.
        self.changed = changed_hosts(previous.snapshot, snapshot) if previous else None
        self._earlier_hosts = previous.virtual_hosts if previous else {}
        self.virtual_hosts: dict[tuple[str, object, int], dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def respond(
        self, type_url: str, proxy: Proxy, names: frozenset[str], sent_version: str | None = None
    ) -> tuple[str, bytes | None]:
        """(version, response body without nonce) for one proxy and type.

        The body is None when the version equals `sent_version`: the proxy has it already, and
        the (large) body is never joined just to be thrown away.
        """
        pieces = self._pieces(type_url, proxy, names)
        if len(pieces) == 1:
            version = pieces[0][0]
        else:
            version = hashlib.blake2b(
                "".join(v for v, _ in pieces).encode(), digest_size=8
            ).hexdigest()
        if version == sent_version:
            return version, None
        body = b"".join(
            [field(1, version.encode()), *(b for _, b in pieces), field(4, type_url.encode())]
        )
        return version, body

    def _pieces(
        self, type_url: str, proxy: Proxy, names: frozenset[str]
    ) -> list[tuple[str, bytes]]:
        """The shared pieces a response is made of, each keyed by exactly what it depends on."""
        snap, ns = self.snapshot, proxy.namespace
        labels = snap.caller_labels(proxy)
        workload = (ns, proxy.labels, proxy.ips, self.services)
        if type_url == CLUSTER:
            return [
                self._memo(
                    ("cds", ns, self.services, self.rules), lambda: self._outbound_clusters(ns)
                ),
                self._memo(
                    ("cds-in", workload),
                    lambda: _encode(CLUSTER, clusters.inbound_clusters(snap, proxy)),
                ),
            ]
        if type_url == LISTENER:
            return [
                self._memo(
                    ("lds", ns, labels, self.services, self.routes),
                    lambda: _encode(LISTENER, listeners.outbound_listeners(snap, proxy)),
                ),
                self._memo(
                    ("lds-in", workload),
                    lambda: _encode(LISTENER, [listeners.inbound_listener(snap, proxy)]),
                ),
            ]
        if type_url == ENDPOINT:
            key = ("eds", ns, names, self.services, self.rules)
            return [self._memo(key, lambda: self._endpoints(ns, names))]
        if type_url == ROUTE:
            key = ("rds", ns, labels, names, self.services, self.rules, self.routes)
            return [self._memo(key, lambda: self._routes(proxy, names))]
        return [("", b"")]

    def _memo(self, key: Hashable, build: Callable[[], bytes]) -> tuple[str, bytes]:
        def versioned() -> tuple[str, bytes]:
            data = build()
            return hashlib.blake2b(data, digest_size=8).hexdigest(), data

        return self.parts.get(key, self.number, versioned)

    def _part(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        return self.parts.get(key, self.number, build)

    def _outbound_clusters(self, ns: str) -> bytes:
        snap = self.snapshot
        static = self._part(("cds-static",), lambda: _encode(CLUSTER, clusters.static_clusters()))
        per_service = [
            self._part(
                ("cds", ns, clusters.cluster_inputs(snap, ns, s)),
                partial(_encode_list, CLUSTER, clusters.service_clusters, snap, ns, s),
            )
            for s in snap.services.values()
        ]
        return b"".join([static, *per_service])

    def _endpoints(self, ns: str, names: frozenset[str]) -> bytes:
        snap = self.snapshot
        return b"".join(
            self._part(
                ("eds", ns, endpoints.endpoint_inputs(snap, ns, name)),
                partial(_encode_list, ENDPOINT, _assignments, snap, ns, name),
            )
            for name in sorted(names)
        )

    def _routes(self, proxy: Proxy, names: frozenset[str]) -> bytes:
        """RouteConfigurations assembled from virtual hosts, most of them reused.

        A virtual host of an unchanged host is taken from the previous generation's route
        config as it is; only changed hosts are looked up by their inputs (and built if new).
        """
        snap, ns, out = self.snapshot, proxy.namespace, []
        labels = snap.caller_labels(proxy)
        for name in sorted(names):
            services = routes.http_services(snap, int(name)) if name.isdigit() else []
            if not services:
                continue
            port = int(name)
            earlier = (
                self._earlier_hosts.get((ns, labels, port), {}) if self.changed is not None else {}
            )
            hosts = {
                s.hostname: earlier[s.hostname]
                if s.hostname in earlier and s.hostname not in (self.changed or ())
                else self._part(
                    ("vhost", routes.virtual_host_inputs(snap, proxy, s, port)),
                    partial(_virtual_host_field, snap, proxy, s, port),
                )
                for s in services
            }
            with self._lock:
                self.virtual_hosts[ns, labels, port] = hosts
            shell = routes.route_config_shell(port).SerializeToString()
            allow_any = field(_VIRTUAL_HOSTS_FIELD, routes.ALLOW_ANY.SerializeToString())
            out.append(encode_resource(ROUTE, b"".join([shell, *hosts.values(), allow_any])))
        return b"".join(out)


def changed_hosts(old: Snapshot, new: Snapshot) -> frozenset[str] | None:
    """Hosts whose virtual host may differ between two snapshots; None when any may."""
    if (
        old.domain_suffix != new.domain_suffix
        or old.source_label_keys != new.source_label_keys
        or old.shared_cluster_ips != new.shared_cluster_ips
        or [Ident(v) for _, v in old.wildcard_routes] != [Ident(v) for _, v in new.wildcard_routes]
    ):
        return None
    changed: set[str] = set()
    for old_index, new_index in (
        (old.services, new.services),
        (old.rules_by_host, new.rules_by_host),
        (old.routes_by_host, new.routes_by_host),
    ):
        for host in old_index.keys() | new_index.keys():
            a, b = old_index.get(host), new_index.get(host)
            if not _identical(a, b):
                changed.add(host)
    # A host routing to a changed host names its ports and rules in its routes: changed too.
    for host, virtual_services in new.routes_by_host.items():
        for vs in virtual_services:
            targets = {
                new.resolve(d.destination.host, vs.meta.namespace)
                for http in vs.spec.http
                for d in http.route
            }
            targets |= {
                new.resolve(http.mirror.host, vs.meta.namespace)
                for http in vs.spec.http
                if http.mirror
            }
            if targets & changed:
                changed.add(host)
    return frozenset(changed)


def _identical(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    return a is b


def _same(old: Fingerprint | None, new: Fingerprint) -> Fingerprint:
    return old if old is not None and old == new else new


def _encode(type_url: str, messages: Iterable[Message]) -> bytes:
    return b"".join(encode_resource(type_url, m.SerializeToString()) for m in messages)


def _encode_list(type_url: str, build: Callable[..., Iterable[Message]], *args: object) -> bytes:
    return _encode(type_url, build(*args))


def _assignments(snap: Snapshot, ns: str, name: str) -> list[Message]:
    found = endpoints.cluster_load_assignment(snap, ns, name)
    return [found] if found is not None else []


def _virtual_host_field(snap: Snapshot, proxy: Proxy, service: MeshService, port: int) -> bytes:
    return field(
        _VIRTUAL_HOSTS_FIELD, routes.virtual_host(snap, proxy, service, port).SerializeToString()
    )
