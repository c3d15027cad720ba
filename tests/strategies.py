"""Hypothesis strategies that write Istio YAML from the API model's own schema.

`spec_for(VirtualServiceSpec)` walks the model's dataclasses as the decoder does (field keys,
required and optional fields, lists, maps, enums, durations) and draws a YAML value for every
field. Field checks (`Annotated[..., check]`) pick the values: mostly ones that pass, with the
awkward edges Envoy is strict about (`%` in header values, empty prefixes, large bodies,
maglev sizes, 0 weights), so that a good share of the documents is accepted and the accepted
ones are as varied as the schema allows. Names that must meet the mesh (hosts, subsets, ports,
labels) come from `Mesh`, the services the documents are routed to.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from istiolite.api.decode import Decoder, FrozenDict

Strategy = st.SearchStrategy[Any]


@dataclass(frozen=True)
class Mesh:
    """What generated routing may name: the services, their ports, subsets and labels."""

    hosts: tuple[str, ...] = ("reviews", "ratings", "details", "mysql")
    ports: tuple[int, ...] = (9080, 3306)
    subsets: tuple[str, ...] = ("v1", "v2", "v3")
    labels: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"app": ("productpage", "reviews"), "version": ("v1", "v2")}
    )
    namespaces: tuple[str, ...] = ("default", "other")


DURATIONS = ("1ms", "250ms", "1s", "1.5s", "10s", "1m", "1h", "1m30s")
REGEXES = ("^/api/.*", "/reviews/[0-9]+", "v[12]", "(a|b)+", ".*")
BAD_REGEXES = ("[", "(?=x)", "", "*")
HEADER_NAMES = ("x-user", "end-user", "X-Request-Id", "x-b3-sampled")
AUTHORITY = (":authority", "host")
HEADER_VALUES = (
    "jason",
    "",
    "100%%",
    "%HOSTNAME%",
    "prefix %DOWNSTREAM_REMOTE_ADDRESS% suffix",
    "%REQ(x-user):8%",
    "%START_TIME(%s)%",
    "a\tb",
)
BAD_HEADER_VALUES = ("100%", "abc%123", "%UNKNOWN_COMMAND%", "%REQ()%", "%HOSTNAME:5%")
# Fields always written (with at least one item): a VirtualService without HTTP routes, or a
# TCP route without destinations, would test little.
ALWAYS = frozenset({("VirtualServiceSpec", "http"), ("TCPRoute", "route")})
# Istio's oneofs, which the model checks in code rather than in its types.
ONE_OF = {
    "HTTPRoute": ("route", "redirect", "directResponse"),
    "StringMatch": ("exact", "prefix", "regex"),
    "AbsentHeaderMatch": ("exact", "prefix", "regex"),
    "HTTPBody": ("string", "bytes"),
    "HTTPRewrite": ("uri", "uriRegexRewrite", "authority"),
    "HTTPFaultInjection": ("delay", "abort"),
    "Abort": ("httpStatus", "grpcStatus"),
    "LoadBalancerSettings": ("simple", "consistentHash"),
    "ConsistentHashLB": ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"),
}
TEXT = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=12)


def spec_for(cls: type, mesh: Mesh = Mesh()) -> Strategy:
    """YAML (dicts, lists, scalars) for a model class, field by field from its type hints."""
    return _Schema(mesh).model(cls)


class _Schema:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._models: dict[type, Strategy] = {}

    def model(self, cls: type) -> Strategy:
        if cls not in self._models:
            # deferred: a model may refer to itself through its fields
            self._models[cls] = st.deferred(lambda: self._fields(cls))
        return self._models[cls]

    def _fields(self, cls: type) -> Strategy:
        required: dict[str, Strategy] = {}
        optional: dict[str, Strategy] = {}
        group = ONE_OF.get(cls.__name__, ())
        choices: dict[str, Strategy] = {}
        for f in Decoder._fields(cls):
            value = self.value(f.hint, f.key)
            if f.key in group:
                choices[f.key] = value
            elif f.required or (cls.__name__, f.key) in ALWAYS:
                required[f.key] = value
            else:
                optional[f.key] = value
        fields = st.fixed_dictionaries(required, optional=optional)
        if not choices:
            return fields
        # Mostly exactly one member of the group, now and then two or none.
        keys = st.sampled_from(sorted(choices)).map(lambda k: [k])
        some = mostly(keys, st.lists(st.sampled_from(sorted(choices)), max_size=2, unique=True))
        chosen = some.flatmap(lambda ks: st.fixed_dictionaries({k: choices[k] for k in ks}))
        return st.tuples(fields, chosen).map(lambda pair: {**pair[0], **pair[1]})

    def value(self, hint: Any, key: str) -> Strategy:
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            [inner] = [a for a in typing.get_args(hint) if a is not type(None)]
            return self.value(inner, key)
        by_key = self._by_key(key, _base(hint))
        if by_key is not None:
            return by_key
        if origin is typing.Annotated:
            base, *field_checks = typing.get_args(hint)
            for check in field_checks:
                found = self._for_check(check, base)
                if found is not None:
                    return found
            return self.value(base, key)
        if origin is tuple:
            return st.lists(self.value(typing.get_args(hint)[0], key), max_size=3)
        if origin is FrozenDict:
            key_hint, item_hint = typing.get_args(hint)
            return st.dictionaries(
                self.value(key_hint, key), self.value(item_hint, key), max_size=2
            )
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.model(hint)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return st.sampled_from([m.value for m in hint])
        return _SCALARS[hint]

    def _by_key(self, key: str, base: Any) -> Strategy | None:
        """Fields whose values must meet the mesh to mean anything."""
        mesh = self.mesh
        if key == "hosts" and typing.get_origin(base) is tuple:
            return mostly(
                st.lists(st.sampled_from(mesh.hosts), min_size=1, max_size=2, unique=True),
                st.lists(TEXT),
            )
        if key == "tls" and typing.get_origin(base) is tuple:
            return st.just([])  # TLS routes are gateways'; these VirtualServices are the mesh's
        if key in ("http", "route") and typing.get_origin(base) is tuple:
            [item] = typing.get_args(base)[:1]
            return st.lists(self.model(item), min_size=1, max_size=3)
        if key == "destinationSubnets":
            return st.lists(mostly(st.sampled_from(["10.0.0.0/8", "10.96.0.11", "fd00::/8"])))
        if key in ("labels", "sourceLabels") and base is dict:
            return st.dictionaries(
                st.sampled_from(sorted(mesh.labels)),
                st.sampled_from(sorted({v for vs in mesh.labels.values() for v in vs})),
                max_size=2,
            )
        if key == "gateways":
            return st.lists(mostly(st.just("mesh")), max_size=1)
        if key == "exportTo":
            return st.lists(st.sampled_from([".", "*", *mesh.namespaces, "~"]), max_size=2)
        if base is not str and base is not int:
            return None
        if key == "host":
            return mostly(st.sampled_from(mesh.hosts))
        if key in ("subset", "name"):
            return mostly(st.sampled_from(mesh.subsets))
        if key == "sourceNamespace":
            return st.sampled_from(mesh.namespaces)
        if key == "mode":
            return mostly(st.just("DISABLE"))
        if key in ("number", "port"):
            return mostly(st.sampled_from(mesh.ports), st.integers(-1, 70000))
        if key == "weight":
            return mostly(st.sampled_from([0, 1, 25, 50, 75, 100, 550]), st.integers(-1, 2**32))
        if key == "retryOn":
            conditions = ["5xx", "reset", "connect-failure", "503", "retriable-4xx", "cancelled"]
            return mostly(st.lists(st.sampled_from(conditions), min_size=1).map(",".join))
        if key == "tableSize":
            return st.sampled_from([0, 1000, 1009, 65537, 65535, 5000011])
        if key == "string":  # direct response bodies, around Envoy's 4 KiB default limit
            return st.sampled_from([0, 10, 4096, 5000, 70_000]).map(lambda n: "b" * n) | TEXT
        return None

    def _for_check(self, check: Callable[..., Any], base: Any) -> Strategy | None:
        """Values for a field check: mostly ones it passes, and its awkward edges."""
        name = getattr(check, "__name__", "")
        if (
            name in ("in_range", "at_least")
            or _named(check, "in_range")
            or _named(check, "at_least")
        ):
            bounds = inspect.getclosurevars(check).nonlocals
            lo = bounds["lo"]
            hi = bounds.get("hi", lo + 1000)
            if base is float:
                return mostly(st.floats(lo, hi), st.sampled_from([lo - 1, hi + 1]))
            return mostly(st.integers(int(lo), min(int(hi), 2**20)), st.sampled_from([lo - 1, hi]))
        samples = self._samples().get(name)
        return None if samples is None else mostly(st.sampled_from(samples[0]), samples[1])

    def _samples(self) -> dict[str, tuple[list[Any], Strategy]]:
        mesh = self.mesh
        odd = TEXT
        return {
            "host": (
                [*mesh.hosts, "reviews.default.svc.cluster.local"],
                st.sampled_from(["a.123", "*"]),
            ),
            "host_pattern": (
                [*mesh.hosts, "*.default.svc.cluster.local", "*ews.default.svc.cluster.local"],
                st.sampled_from(["*", "a.123", "10.96.0.11"]),
            ),
            "dns_label": ([*mesh.subsets, *mesh.namespaces], st.sampled_from(["V1", "a_b"])),
            "header_name": (list(HEADER_NAMES), odd),
            "match_header_name": ([*HEADER_NAMES, ":path"], odd),
            "_operation_header": (list(HEADER_NAMES), st.sampled_from(AUTHORITY) | odd),
            "_cors_header": ([*HEADER_NAMES, "*"], odd),
            "header_value": (list(HEADER_VALUES), st.sampled_from(BAD_HEADER_VALUES) | odd),
            "re2_regex": (list(REGEXES), st.sampled_from(BAD_REGEXES) | odd),
            "_cors_method": (["GET", "POST", "OPTIONS", "*"], st.sampled_from(["get", "PUTT"])),
            "_grpc_status": (["UNAVAILABLE", "NOT_FOUND", "OK"], odd),
            "gateway_name": (["mesh"], st.sampled_from(["*/gw", "ns1/*", "./gw"]) | odd),
            "_virtual_service_host": (
                [*mesh.hosts, "*.default.svc.cluster.local", "*ews.default.svc.cluster.local"],
                st.sampled_from(["*", "a.123", "10.96.0.11"]),
            ),
            "_tls_mode": (["DISABLE"], st.sampled_from(["ISTIO_MUTUAL", "SIMPLE"])),
            "_base64": (["aGVsbG8=", "", "YQ==" * 2000], st.sampled_from(["no!", "\x80"])),
            "_fault_percent": ([0.0, 0.0001, 0.5, 50.0, 100.0], st.floats(-1, 101)),
            "cidr": (["10.0.0.0/8", "10.96.0.11", "fd00::/8"], odd),
            "non_empty": (["session", "user"], st.just("")),
            "egress_host": (
                ["./*", "*/*", "~/*", "default/reviews.default.svc.cluster.local"],
                odd,
            ),
            "positive_duration": (list(DURATIONS), st.sampled_from(["0s", "100us"])),
            "non_negative_duration": (["0s", *DURATIONS], st.just("-1s")),
            "maglev_table_size": ([1009, 65537], st.sampled_from([0, 1000, 65535, 5000011])),
        }


def mostly(valid: Strategy, odd: Strategy = TEXT) -> Strategy:
    """Values that mean something to the mesh, and now and then anything else."""
    return st.sampled_from([True] * 19 + [False]).flatmap(lambda usual: valid if usual else odd)


def _base(hint: Any) -> Any:
    """The type under `Annotated[...]`, with FrozenDict read as dict."""
    if typing.get_origin(hint) is typing.Annotated:
        return _base(typing.get_args(hint)[0])
    if typing.get_origin(hint) is FrozenDict:
        return dict
    return hint


def _named(check: Callable[..., Any], name: str) -> bool:
    return name in getattr(check, "__qualname__", "")


_SCALARS: dict[Any, Strategy] = {
    str: TEXT,
    bool: st.booleans(),
    int: mostly(st.sampled_from([0, 1, 2, 5, 100]), st.integers(-1, 2**31)),
    float: mostly(st.sampled_from([0.0, 0.00005, 0.5, 50.0, 100.0]), st.floats(-1, 101)),
    timedelta: st.sampled_from(DURATIONS),
}
