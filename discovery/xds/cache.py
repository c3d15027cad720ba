"""Config built once per distinct input and serialized once, shared by every stream.

A Generation wraps one Snapshot. Translation output is memoized by what it depends on: outbound
clusters by the proxy's namespace, inbound ones by its workload, route configs by namespace,
labels and name, endpoints by namespace and cluster name. Each resource is encoded once as a
`DiscoveryResponse.resources` entry, so a response for any proxy is a join of shared bytes.

Building is CPU work; callers run it on the builder thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import partial

from google.protobuf.message import Message
from istiolite.discovery.model import Proxy, Snapshot
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


def encode_resource(type_url: str, message: Message) -> bytes:
    """`DiscoveryResponse.resources` entry (field 2) holding `Any{type_url, value}`."""
    return field(2, field(1, type_url.encode()) + field(2, message.SerializeToString()))


def with_nonce(body: bytes, nonce: str) -> bytes:
    """Add the per-stream nonce (field 5) to a shared response body."""
    return body + field(5, nonce.encode())


class Generation:
    """One snapshot of the mesh and everything built from it so far."""

    def __init__(self, snapshot: Snapshot, number: int) -> None:
        self.snapshot = snapshot
        self.number = number
        self.created = time.monotonic()
        self._memo: dict[Hashable, Sequence[bytes]] = {}
        self._lock = threading.Lock()

    def _entries(
        self, key: Hashable, build: Callable[[], Iterable[Message]], type_url: str
    ) -> Sequence[bytes]:
        found = self._memo.get(key)
        if found is None:
            found = tuple(encode_resource(type_url, m) for m in build())
            with self._lock:
                found = self._memo.setdefault(key, found)
        return found

    def body(self, type_url: str, proxy: Proxy, names: frozenset[str]) -> tuple[str, bytes, int]:
        """(version, response body without nonce, resource count) for one proxy and type."""
        entries = self._collect(type_url, proxy, names)
        joined = b"".join(entries)
        version = hashlib.blake2b(joined, digest_size=8).hexdigest()
        body = field(1, version.encode()) + joined + field(4, type_url.encode())
        return version, body, len(entries)

    def _collect(self, type_url: str, proxy: Proxy, names: frozenset[str]) -> list[bytes]:
        snap, ns, labels = self.snapshot, proxy.namespace, proxy.labels
        workload = (ns, labels, proxy.ips)
        if type_url == CLUSTER:
            return [
                *self._entries(
                    ("cds-out", ns), lambda: clusters.outbound_clusters(snap, ns), type_url
                ),
                *self._entries(
                    ("cds-in", workload), lambda: clusters.inbound_clusters(snap, proxy), type_url
                ),
            ]
        if type_url == LISTENER:
            return [
                *self._entries(
                    ("lds-out", ns, labels),
                    lambda: listeners.outbound_listeners(snap, proxy),
                    type_url,
                ),
                *self._entries(
                    ("lds-in", workload),
                    lambda: [listeners.inbound_listener(snap, proxy)],
                    type_url,
                ),
            ]
        if type_url == ROUTE:
            return [
                e
                for n in sorted(names)
                for e in self._entries(
                    ("rds", ns, labels, n), partial(routes.build_routes, snap, proxy, [n]), type_url
                )
            ]
        if type_url == ENDPOINT:
            return [
                e
                for n in sorted(names)
                for e in self._entries(
                    ("eds", ns, n), partial(endpoints.build_endpoints, snap, proxy, [n]), type_url
                )
            ]
        return []
