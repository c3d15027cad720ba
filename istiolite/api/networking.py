"""Istio's networking.istio.io/v1 VirtualService, DestinationRule, WorkloadEntry and Sidecar
(Gateway and ServiceEntry have modules of their own, built on these parts).

Field names and meanings are Istio's, so Istio YAML for the supported subset works unchanged.
Fields istiolite does not implement are listed in each class's UNSUPPORTED map and rejected with
a reason; nothing is silently ignored. docs/api.md lists the same fields for users.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import dataclasses
import enum
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, ClassVar, TypeVar

from istiolite.api import checks
from istiolite.api.checks import Percent, Port, Regex
from istiolite.api.decode import FrozenDict, camel, model
from istiolite.api.errors import MapKey, Path, format_path
from istiolite.api.hosts import DEFAULT_DOMAIN_SUFFIX, resolve_host

Problems = Iterator[tuple[Path, str]]
_M = TypeVar("_M", "HTTPMatchRequest", "L4MatchAttributes", "TLSMatchAttributes")

Host = Annotated[str, checks.host]
HeaderName = Annotated[str, checks.header_name]
MatchHeaderName = Annotated[str, checks.match_header_name]
HeaderValue = Annotated[str, checks.header_value]
Labels = Annotated[FrozenDict[str, str], checks.labels]
Timeout = Annotated[timedelta, checks.non_negative_duration]
PositiveDuration = Annotated[timedelta, checks.positive_duration]
# Istio's uint32 fields: beyond 2^32-1 Envoy could not even be sent the value.
NonNegativeInt = Annotated[int, checks.in_range(0, 2**32 - 1)]
# Envoy's bounds on ring hash sizes; 0 leaves its default (1024).
RingSize = Annotated[int, checks.in_range(0, 8_388_608)]
NonEmpty = Annotated[str, checks.non_empty]
Line = Annotated[str, checks.line]
# Istio's int32 fields; 0 means "not set" wherever Istio reads it that way.
Int32 = Annotated[int, checks.in_range(0, 2**31 - 1)]
# Envoy takes direct response bodies up to the route configuration's limit, which istiolite
# raises to Istio's 1 MiB (Envoy's default is 4 KiB).
MAX_DIRECT_RESPONSE_BODY = 1024 * 1024
# Envoy's limit on the total of a route's weights.
MAX_TOTAL_WEIGHT = 2**32 - 1


def _set_fields(obj: object, *names: str) -> list[str]:
    return [n for n in names if getattr(obj, n) is not None]


def _exactly_one(obj: object, *names: tuple[str, str]) -> Problems:
    """Oneof rule over (attribute, yaml key) pairs, reported on the object itself."""
    present = [key for attr, key in names if getattr(obj, attr) is not None]
    keys = ", ".join(key for _, key in names)
    if not present:
        yield (), f"must set one of {keys}"
    elif len(present) > 1:
        yield (), f"must set only one of {keys}, got {', '.join(present)}"


# --- shared -----------------------------------------------------------------------------------


@model
class StringMatch:
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    # withoutHeaders reads `regex: "*"` as "the header is present", as Istio does.
    STAR_MEANS_PRESENT: ClassVar[bool] = False

    def check(self) -> Problems:
        present = _set_fields(self, "exact", "prefix", "regex")
        if len(present) > 1:
            yield (), f"must set only one of exact, prefix, regex, got {', '.join(present)}"
        if self.regex is not None and not self.means_present:
            problem = checks.re2_regex(self.regex)
            if problem:
                yield ("regex",), problem

    @property
    def is_empty(self) -> bool:
        return self.exact is None and self.prefix is None and self.regex is None

    @property
    def means_present(self) -> bool:
        """Matches any value, so only whether the header is there counts."""
        return self.is_empty or (self.STAR_MEANS_PRESENT and self.regex == "*")


@model
class AbsentHeaderMatch(StringMatch):
    STAR_MEANS_PRESENT: ClassVar[bool] = True


def _no_empty_prefix(match: StringMatch | None) -> str | None:
    """Envoy's string matchers refuse an empty prefix (a URI prefix may be empty)."""
    if match is not None and match.prefix == "":
        return "an empty prefix matches everything and Envoy refuses it; omit the match instead"
    return None


@model
class PortSelector:
    number: Port


@model
class Destination:
    host: Host
    subset: Annotated[str, checks.dns_label] | None = None
    port: PortSelector | None = None


@model
class Percentage:
    value: Percent


# The gateway of sidecars: a VirtualService without `gateways` is bound to it alone.
MESH = "mesh"


def gateway_name(value: str) -> str | None:
    """A gateway a VirtualService binds to: `mesh`, `namespace/name`, or `name` (a Gateway in
    the VirtualService's own namespace). Istio's legacy `name.namespace[.svc.cluster.local]`
    is read too, as Istio reads it."""
    if value == MESH:
        return None
    namespace, slash, name = value.partition("/")
    if slash:
        if namespace == ".":
            return (
                f"the namespace must be a namespace name (Istio refuses '.'; write the name "
                f"alone for a Gateway in the VirtualService's namespace), got {value!r}"
            )
        if checks.dns_label(namespace) or checks.dns_label(name):
            return (
                f"must be 'mesh', a Gateway's name, or namespace/name with both parts DNS "
                f"labels, got {value!r}"
            )
        return None
    if checks.dns_subdomain(value) is None and not value.rsplit(".", 1)[-1].isdigit():
        return None
    return f"must be 'mesh', a Gateway's name, or namespace/name, got {value!r}"


GatewayName = Annotated[str, gateway_name]


def resolve_gateway(name: str, namespace: str) -> str:
    """`namespace/name` for a checked gateway name written in `namespace`; `mesh` stays.

    Istio's rule (pilot's resolveGatewayName): a name alone is a Gateway of the same
    namespace, and in the legacy `name.namespace.svc.cluster.local` the second label is the
    namespace.
    """
    if name == MESH or "/" in name:
        return name
    first, dot, rest = name.partition(".")
    if dot:
        return f"{rest.partition('.')[0]}/{first}"
    return f"{namespace}/{name}"


def _resolve_all(names: tuple[str, ...], namespace: str) -> tuple[str, ...]:
    return tuple(resolve_gateway(n, namespace) for n in names)


# --- VirtualService ---------------------------------------------------------------------------


@model
class HTTPMatchRequest:
    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: FrozenDict[MatchHeaderName, StringMatch] = FrozenDict()
    port: Port | None = None
    source_labels: Labels = FrozenDict()
    query_params: FrozenDict[NonEmpty, StringMatch] = FrozenDict()
    ignore_uri_case: bool = False
    without_headers: FrozenDict[MatchHeaderName, AbsentHeaderMatch] = FrozenDict()
    source_namespace: Annotated[str, checks.dns_label] | None = None
    # Where this match applies, in place of the VirtualService's gateways; each `mesh` or
    # `namespace/name` once the resource is parsed (VirtualServiceSpec.resolved).
    gateways: tuple[GatewayName, ...] = ()

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "statPrefix": "per-match stat prefixes",
    }

    def check(self) -> Problems:
        for key in ("uri", "scheme", "method", "authority"):
            match = getattr(self, key)
            if match is not None and match.is_empty:
                yield (key,), "must set one of exact, prefix, regex"
            elif key != "uri" and (problem := _no_empty_prefix(match)):
                yield (key, "prefix"), problem
        for field, matches in (
            ("headers", self.headers),
            ("withoutHeaders", self.without_headers),
            ("queryParams", self.query_params),
        ):
            for name, match in matches.items():
                if problem := _no_empty_prefix(match):
                    yield (field, MapKey(name), "prefix"), problem
        for name in self.headers.keys() & self.without_headers.keys():
            yield (
                ("withoutHeaders", MapKey(name)),
                f"header {name!r} is also required under headers",
            )


def _operation_header(name: str) -> str | None:
    if name.lower() == ":authority":
        return None
    return checks.header_name(name)


def is_authority(name: str) -> bool:
    """`:authority` and `host` name the request's authority, which Envoy rewrites itself."""
    return name.lower() in (":authority", "host")


@model
class HeaderOperations:
    set: FrozenDict[Annotated[str, _operation_header], HeaderValue] = FrozenDict()
    add: FrozenDict[Annotated[str, _operation_header], HeaderValue] = FrozenDict()
    remove: tuple[Annotated[str, _operation_header], ...] = ()

    def authority(self) -> Iterator[tuple[Path, str]]:
        """Where this sets the authority (a rewrite of the Host header), and to what."""
        for op in ("set", "add"):
            for name, value in getattr(self, op).items():
                if is_authority(name):
                    yield (op, MapKey(name)), value


@model
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None

    def check(self) -> Problems:
        # Envoy cannot add or remove the Host header or pseudo-headers; setting the request's
        # authority is a host rewrite, as in Istio.
        if self.request is not None:
            for i, name in enumerate(self.request.remove):
                if is_authority(name):
                    yield ("request", "remove", i), f"cannot remove {name!r}"
        if self.response is not None:
            for path, _ in self.response.authority():
                yield ("response", *path), "the authority is a request header; cannot set it here"
            for i, name in enumerate(self.response.remove):
                if is_authority(name):
                    yield ("response", "remove", i), f"cannot remove {name!r}"


@model
class HTTPRouteDestination:
    destination: Destination
    weight: Int32 | None = None
    headers: Headers | None = None


class RedirectScheme(enum.StrEnum):
    HTTP = "http"
    HTTPS = "https"


REDIRECT_CODES = (301, 302, 303, 307, 308)


@model
class HTTPRedirect:
    uri: Line | None = None
    prefix_rewrite: Line | None = None
    authority: Line | None = None
    # 0, as in Istio, leaves the port alone.
    port: Annotated[int, checks.in_range(0, 65535)] | None = None
    scheme: RedirectScheme | None = None
    # 0, as in Istio, is the default: 301.
    redirect_code: int | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "derivePort": "deriving the redirect port; set port explicitly",
    }

    def check(self) -> Problems:
        if self.redirect_code and self.redirect_code not in REDIRECT_CODES:
            yield (
                ("redirectCode",),
                f"must be 301, 302, 303, 307 or 308 (the codes Envoy redirects with), "
                f"got {self.redirect_code}",
            )
        if self.uri and self.prefix_rewrite:  # "" is unset, as in Istio
            yield (), "must set only one of uri, prefixRewrite"
        if not (
            self.uri or self.prefix_rewrite or self.authority or _set_fields(self, "port", "scheme")
        ):
            yield (), "must set at least one of uri, prefixRewrite, authority, port, scheme"


@model
class RegexRewrite:
    match: Regex
    rewrite: Annotated[str, checks.non_empty, checks.line]


@model
class HTTPRewrite:
    uri: Line | None = None
    authority: Line | None = None
    uri_regex_rewrite: RegexRewrite | None = None

    def check(self) -> Problems:
        if self.uri and self.uri_regex_rewrite is not None:
            yield (), "must set only one of uri, uriRegexRewrite"
        if not (self.uri or self.authority or self.uri_regex_rewrite):  # "" is unset, as in Istio
            yield (), "must set at least one of uri, authority, uriRegexRewrite"


# Envoy's retry_on conditions (HTTP and gRPC) that Istio passes through; a bare status code
# such as "503" is also accepted and becomes a retriable status code.
RETRY_ON_CONDITIONS = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


# The status codes a retryOn may name: those HTTP defines (Go's net/http list, as Istio uses).
HTTP_STATUS_CODES = frozenset(
    [
        *(100, 101, 102, 103, *range(200, 209), 226, *range(300, 306), 307, 308),
        *(*range(400, 419), *range(421, 427), 428, 429, 431, 451, *range(500, 509), 510, 511),
    ]
)


def _retry_on(value: str) -> str | None:
    for token in value.split(","):
        if token in RETRY_ON_CONDITIONS:
            continue
        if token.isdigit() and int(token) in HTTP_STATUS_CODES:
            continue
        accepted = ", ".join(sorted(RETRY_ON_CONDITIONS))
        return (
            f"unknown retry condition {token!r}; accepted, separated by ',' without spaces: "
            f"{accepted}, or an HTTP status code such as 503"
        )
    return None


@model
class HTTPRetry:
    # Istio semantics: `retries` present with attempts 0 (or omitted) turns retries off.
    attempts: Int32 = 0
    per_try_timeout: PositiveDuration | None = None
    retry_on: Annotated[str, _retry_on] | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "retryRemoteLocalities": "locality-aware retries (istiolite has no locality routing)",
        "backoff": "custom retry backoff; Envoy's default (25ms base) applies",
    }

    def check(self) -> Problems:
        if self.attempts == 0:
            for field in _set_fields(self, "per_try_timeout", "retry_on"):
                yield (camel(field),), "attempts is 0, which turns retries off; set attempts"


def _fault_percent(value: float) -> str | None:
    if value == 0 or 0.0001 <= value <= 100:
        return None
    return f"must be 0 or 0.0001..100, got {value:g}"


@model
class FaultPercentage:
    value: Annotated[float, _fault_percent]


@model
class Delay:
    fixed_delay: PositiveDuration
    percentage: FaultPercentage | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "percent": "deprecated by Istio; use percentage.value",
        "exponentialDelay": "exponential delays",
    }


GRPC_STATUS = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def _grpc_status(name: str) -> str | None:
    if name in GRPC_STATUS:
        return None
    return f"must be a gRPC status name ({', '.join(GRPC_STATUS)}), got {name!r}"


@model
class Abort:
    http_status: Annotated[int, checks.in_range(200, 599)] | None = None
    grpc_status: Annotated[str, _grpc_status] | None = None
    percentage: FaultPercentage | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "percent": "deprecated by Istio; use percentage.value",
        "http2Error": "HTTP/2 error aborts",
    }

    def check(self) -> Problems:
        yield from _exactly_one(self, ("http_status", "httpStatus"), ("grpc_status", "grpcStatus"))


@model
class HTTPFaultInjection:
    delay: Delay | None = None
    abort: Abort | None = None

    def check(self) -> Problems:
        if self.delay is None and self.abort is None:
            yield (), "must set delay, abort or both"


CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")


def _cors_method(value: str) -> str | None:
    if value in CORS_METHODS:
        return None
    return f"must be one of {', '.join(CORS_METHODS)} (upper case), got {value!r}"


def _cors_header(value: str) -> str | None:
    return None if value == "*" else checks.header_name(value)


@model
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[Annotated[str, _cors_method], ...] = ()
    allow_headers: tuple[Annotated[str, _cors_header], ...] = ()
    expose_headers: tuple[Annotated[str, _cors_header], ...] = ()
    max_age: Annotated[timedelta, checks.positive_duration, checks.whole_seconds] | None = None
    allow_credentials: bool | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "allowOrigin": "deprecated by Istio; use allowOrigins",
        "unmatchedPreflights": "unmatched preflight handling",
    }

    def check(self) -> Problems:
        for i, origin in enumerate(self.allow_origins):
            if not (origin.exact or origin.prefix or origin.regex):
                yield (
                    ("allowOrigins", i),
                    "must set a non-empty exact, prefix or regex (an empty one matches no origin)",
                )


def _base64(value: str) -> str | None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        return f"must be base64, such as 'aGVsbG8=', got {value[:40]!r}"
    return None


@model
class HTTPBody:
    string: str | None = None
    bytes: Annotated[str, _base64] | None = None

    def check(self) -> Problems:
        yield from _exactly_one(self, ("string", "string"), ("bytes", "bytes"))
        if self.size > MAX_DIRECT_RESPONSE_BODY:
            yield (
                (),
                f"the body is {self.size} bytes; at most {MAX_DIRECT_RESPONSE_BODY} (1 MiB), "
                f"as in Istio",
            )

    @property
    def size(self) -> int:
        if self.string is not None:
            return len(self.string.encode())
        return len(self.payload())

    def payload(self) -> builtins.bytes:
        if self.string is not None:
            return self.string.encode()
        return base64.b64decode(self.bytes or "")


@model
class HTTPDirectResponse:
    status: Annotated[int, checks.in_range(200, 599)]
    body: HTTPBody | None = None


@model
class HTTPRoute:
    name: str | None = None
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Timeout | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirror_percentage: Percentage | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "delegate": "delegate VirtualServices",
        "mirrors": "multiple mirrors; use mirror and mirrorPercentage",
        "mirrorPercent": "deprecated by Istio; use mirrorPercentage",
        "mirror_percent": "deprecated by Istio; use mirrorPercentage",
    }

    def check(self) -> Problems:
        actions = [
            k
            for k, v in (
                ("route", self.route),
                ("redirect", self.redirect),
                ("directResponse", self.direct_response),
            )
            if v
        ]
        if not actions:
            yield (), "must set one of route, redirect, directResponse"
        elif len(actions) > 1:
            yield (
                (),
                f"must set only one of route, redirect, directResponse, got {', '.join(actions)}",
            )
        for field in ("rewrite", "fault"):
            if getattr(self, field) is not None and (self.redirect or self.direct_response):
                yield (field,), "cannot be combined with redirect or directResponse"
        yield from _weights(self.route)
        yield from self._prefix_redirect()
        yield from self._authority()

    def _prefix_redirect(self) -> Problems:
        if self.redirect is None or not self.redirect.prefix_rewrite:
            return
        for i, m in enumerate(self.match):
            if m.uri is not None and m.uri.prefix is None:
                yield (
                    ("match", i, "uri"),
                    "redirect.prefixRewrite replaces a matched prefix: every uri match must be "
                    "a prefix match",
                )

    def _authority(self) -> Problems:
        """Istio's rule: the authority is rewritten in one place only."""
        places: list[Path] = (
            [("rewrite", "authority")] if self.rewrite and self.rewrite.authority else []
        )
        if self.headers is not None and self.headers.request is not None:
            places += [("headers", "request", *p) for p, _ in self.headers.request.authority()]
        for place in places[1:]:
            first = format_path(places[0])
            yield place, f"the authority is already rewritten by {first}; set it in one place"


def _weights(route: tuple[HTTPRouteDestination, ...] | tuple[RouteDestination, ...]) -> Problems:
    """Weights are relative, as in Istio (Envoy divides each by their total)."""
    weights = [r.weight or 0 for r in route]
    if len(route) > 1 and sum(weights) == 0:
        yield ("route",), "the weights add up to 0; give at least one destination a weight"
    if sum(weights) > MAX_TOTAL_WEIGHT:
        yield (
            ("route",),
            f"the weights add up to {sum(weights)}; Envoy takes at most {MAX_TOTAL_WEIGHT}",
        )


@model
class L4MatchAttributes:
    destination_subnets: tuple[Annotated[str, checks.cidr], ...] = ()
    port: Port | None = None
    source_labels: Labels = FrozenDict()
    source_namespace: Annotated[str, checks.dns_label] | None = None
    gateways: tuple[GatewayName, ...] = ()

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "sourceSubnet": "matching on the source subnet",
    }


@model
class RouteDestination:
    destination: Destination
    weight: Int32 | None = None


@model
class TCPRoute:
    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()

    def check(self) -> Problems:
        if not self.route:
            yield ("route",), "must have at least one destination"
        yield from _weights(self.route)


def _virtual_service_host(value: str) -> str | None:
    """A host as `checks.host_pattern` takes it, or `*`: every host (for gateways only)."""
    return None if value == "*" else checks.host_pattern(value)


VirtualServiceHost = Annotated[str, _virtual_service_host]


def host_within(host: str, pattern: str) -> bool:
    """Whether every name `host` matches is matched by `pattern` too (Istio's SubsetOf)."""
    if pattern in ("*", host):
        return True
    return pattern.startswith("*") and host.endswith(pattern[1:])


@model
class TLSMatchAttributes:
    sni_hosts: tuple[VirtualServiceHost, ...]
    destination_subnets: tuple[Annotated[str, checks.cidr], ...] = ()
    port: Port | None = None
    source_labels: Labels = FrozenDict()
    source_namespace: Annotated[str, checks.dns_label] | None = None
    gateways: tuple[GatewayName, ...] = ()

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "sourceSubnet": "matching on the source subnet",
    }

    def check(self) -> Problems:
        if not self.sni_hosts:
            yield ("sniHosts",), "must list at least one SNI host"


@model
class TLSRoute:
    """Routes for TLS a gateway passes through (its PASSTHROUGH servers), by SNI."""

    match: tuple[TLSMatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()

    def check(self) -> Problems:
        if not self.match:
            yield ("match",), "must have at least one match (with sniHosts)"
        if not self.route:
            yield ("route",), "must have at least one destination"
        yield from _weights(self.route)


@model
class VirtualServiceSpec:
    hosts: tuple[VirtualServiceHost, ...]
    # `mesh` and `namespace/name` once the resource is parsed (`resolved`); none means mesh.
    gateways: tuple[GatewayName, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    export_to: tuple[str, ...] = ()

    @property
    def applies_to_mesh(self) -> bool:
        """Sidecars use it: `gateways` is empty or names `mesh` (Istio's rule)."""
        return not self.gateways or MESH in self.gateways

    def check(self) -> Problems:
        if not self.hosts:
            yield (
                ("hosts",),
                "must list at least one host (istiolite has no delegate VirtualServices)",
            )
        if not self.http and not self.tcp and not self.tls:
            yield (), "must have http, tcp or tls routes"
        if self.applies_to_mesh:
            for i, host in enumerate(self.hosts):
                if host == "*":
                    yield (
                        ("hosts", i),
                        "'*' alone is allowed only in a VirtualService bound to gateways "
                        "(without 'mesh'); for sidecars name the hosts or a '*.suffix'",
                    )
            if self.tls:
                yield (
                    ("tls",),
                    "TLS (SNI) routes are for gateways' PASSTHROUGH servers; istiolite's "
                    "sidecars have none: bind the VirtualService to gateways without 'mesh'",
                )
        yield from self._sni_hosts()

    def _sni_hosts(self) -> Problems:
        for i, route in enumerate(self.tls):
            for j, match in enumerate(route.match):
                for k, sni in enumerate(match.sni_hosts):
                    # An IP is no SNI clients send; Istio takes it without the check.
                    if checks.is_ip(sni) or any(host_within(sni, h) for h in self.hosts):
                        continue
                    yield (
                        ("tls", i, "match", j, "sniHosts", k),
                        f"{sni!r} is not within the VirtualService's hosts "
                        f"({', '.join(self.hosts)})",
                    )

    def resolved(self, namespace: str) -> VirtualServiceSpec:
        """This spec with every gateway name as `mesh` or `namespace/name` (resolve_gateway)."""

        def matches(found: tuple[_M, ...]) -> tuple[_M, ...]:
            return tuple(
                dataclasses.replace(m, gateways=_resolve_all(m.gateways, namespace))
                if m.gateways
                else m
                for m in found
            )

        return dataclasses.replace(
            self,
            gateways=_resolve_all(self.gateways, namespace),
            http=tuple(dataclasses.replace(r, match=matches(r.match)) for r in self.http),
            tcp=tuple(dataclasses.replace(r, match=matches(r.match)) for r in self.tcp),
            tls=tuple(dataclasses.replace(r, match=matches(r.match)) for r in self.tls),
        )

    def check_in(self, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> Problems:
        """Rules that need the namespace: hosts as they resolve there, and exportTo."""
        resolved = [resolve_host(h, namespace, domain_suffix) for h in self.hosts]
        for j, b in enumerate(resolved):
            for i, a in enumerate(resolved[:j]):
                if hosts_overlap(a, b):
                    yield (
                        ("hosts", j),
                        f"{self.hosts[j]!r} overlaps {self.hosts[i]!r} (hosts[{i}]); list each "
                        f"host once",
                    )
                    break
        yield from export_to_problems(self.export_to, namespace)


def hosts_overlap(a: str, b: str) -> bool:
    """Whether two hosts can name one service: equal, or a wildcard covering the other."""
    if a == b:
        return True
    if a.startswith("*") and b.endswith(a[1:]):
        return True
    return b.startswith("*") and a.endswith(b[1:])


def export_to_problems(
    values: tuple[str, ...], namespace: str, *, allow_none: bool = False
) -> Problems:
    """Istio's exportTo: `.`, `*` or namespace names, each once, and `*` alone. A
    ServiceEntry (`allow_none`) may also say `~`, alone: visible to no proxy but its own."""
    seen: dict[str, int] = {}
    specials = (".", "*", "~") if allow_none else (".", "*")
    for i, value in enumerate(values):
        if value not in specials and checks.dns_label(value):
            accepted = "'.', '*', '~'" if allow_none else "'.', '*'"
            yield ("exportTo", i), f"must be {accepted} or a namespace name, got {value!r}"
            continue
        key = namespace if value == "." else value
        if key in seen:
            yield ("exportTo", i), f"{value!r} repeats exportTo[{seen[key]}] (namespace {key})"
        seen.setdefault(key, i)
    if "*" in values and len(values) > 1:
        yield ("exportTo",), "'*' exports to every namespace; it cannot be combined with others"
    if "~" in values and len(values) > 1:
        yield ("exportTo",), "'~' exports to no namespace; it cannot be combined with others"


# --- DestinationRule --------------------------------------------------------------------------


class SimpleLB(enum.StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


@model
class HTTPCookie:
    name: NonEmpty
    path: str | None = None
    ttl: Timeout | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {"attributes": "cookie attributes"}


@model
class RingHash:
    # 0, as in Istio, leaves Envoy's default (1024).
    minimum_ring_size: RingSize | None = None


@model
class Maglev:
    table_size: Annotated[int, checks.maglev_table_size]


@model
class ConsistentHashLB:
    http_header_name: HeaderName | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: NonEmpty | None = None
    ring_hash: RingHash | None = None
    maglev: Maglev | None = None
    minimum_ring_size: RingSize | None = None

    def check(self) -> Problems:
        yield from _exactly_one(
            self,
            ("http_header_name", "httpHeaderName"),
            ("http_cookie", "httpCookie"),
            ("use_source_ip", "useSourceIp"),
            ("http_query_parameter_name", "httpQueryParameterName"),
        )
        algorithms = _set_fields(self, "ring_hash", "maglev", "minimum_ring_size")
        if len(algorithms) > 1:
            yield (), "must set only one of ringHash, maglev, minimumRingSize"


@model
class LoadBalancerSettings:
    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "localityLbSetting": "locality load balancing",
        "zoneAwareLbSetting": "zone-aware load balancing",
        "warmupDurationSecs": "slow start",
        "warmup": "slow start",
    }

    def check(self) -> Problems:
        yield from _exactly_one(self, ("simple", "simple"), ("consistent_hash", "consistentHash"))


# Connection pool limits: 0 is unset, as in Istio (the limit stays Envoy's: unlimited).
@model
class TcpKeepalive:
    probes: NonNegativeInt | None = None
    time: PositiveDuration | None = None
    interval: PositiveDuration | None = None


@model
class TCPSettings:
    max_connections: Int32 | None = None
    connect_timeout: PositiveDuration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: PositiveDuration | None = None
    idle_timeout: Timeout | None = None


class H2UpgradePolicy(enum.StrEnum):
    DEFAULT = "DEFAULT"
    DO_NOT_UPGRADE = "DO_NOT_UPGRADE"
    UPGRADE = "UPGRADE"


@model
class HTTPSettings:
    http1_max_pending_requests: Int32 | None = None
    http2_max_requests: Int32 | None = None
    max_requests_per_connection: Int32 | None = None
    max_retries: Int32 | None = None
    idle_timeout: PositiveDuration | None = None
    h2_upgrade_policy: H2UpgradePolicy | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: Int32 | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {"http2KeepAlive": "HTTP/2 keepalive pings"}

    def check(self) -> Problems:
        if self.h2_upgrade_policy is H2UpgradePolicy.UPGRADE and self.use_client_protocol:
            yield (
                ("useClientProtocol",),
                "cannot be true with h2UpgradePolicy UPGRADE: the upstream protocol is either "
                "the client's or HTTP/2",
            )


@model
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None

    def check(self) -> Problems:
        if self.tcp is None and self.http is None:
            yield (), "must set tcp, http or both (an empty connectionPool changes nothing)"


@model
class OutlierDetection:
    consecutive_5xx_errors: NonNegativeInt | None = None
    consecutive_gateway_errors: NonNegativeInt | None = None
    consecutive_local_origin_failures: NonNegativeInt | None = None
    split_external_local_origin_errors: bool | None = None
    interval: PositiveDuration | None = None
    base_ejection_time: PositiveDuration | None = None
    max_ejection_percent: Annotated[int, checks.in_range(0, 100)] | None = None
    min_health_percent: Annotated[int, checks.in_range(0, 100)] | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "consecutiveErrors": "deprecated by Istio; use consecutive5xxErrors",
    }

    def check(self) -> Problems:
        if self.consecutive_local_origin_failures and not self.split_external_local_origin_errors:
            yield (
                ("consecutiveLocalOriginFailures",),
                "needs splitExternalLocalOriginErrors: true",
            )


def _tls_mode(mode: str) -> str | None:
    if mode == "DISABLE":
        return None
    return f"istiolite does not originate TLS yet; only DISABLE is accepted, got {mode!r}"


@model
class ClientTLSSettings:
    mode: Annotated[str, _tls_mode]

    UNSUPPORTED: ClassVar[Mapping[str, str]] = dict.fromkeys(
        (
            "clientCertificate",
            "privateKey",
            "caCertificates",
            "credentialName",
            "subjectAltNames",
            "sni",
            "insecureSkipVerify",
            "caCrl",
        ),
        "TLS origination (istiolite does not originate TLS yet)",
    )


_TRAFFIC_POLICY_UNSUPPORTED: Mapping[str, str] = {
    "tunnel": "HTTP CONNECT tunnelling",
    "proxyProtocol": "PROXY protocol",
    "retryBudget": "retry budgets",
}


@model
class PortTrafficPolicy:
    port: PortSelector
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = _TRAFFIC_POLICY_UNSUPPORTED

    def check(self) -> Problems:
        fields = ("load_balancer", "connection_pool", "outlier_detection", "tls")
        if not _set_fields(self, *fields):
            yield (), "must set loadBalancer, connectionPool, outlierDetection or tls besides port"


@model
class TrafficPolicy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    tls: ClientTLSSettings | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = _TRAFFIC_POLICY_UNSUPPORTED

    def check(self) -> Problems:
        fields = ("load_balancer", "connection_pool", "outlier_detection", "tls")
        if not _set_fields(self, *fields) and not self.port_level_settings:
            yield (
                (),
                (
                    "must set at least one of loadBalancer, connectionPool, outlierDetection, "
                    "portLevelSettings, tls (an empty trafficPolicy changes nothing)"
                ),
            )
        seen: dict[int, int] = {}
        for i, settings in enumerate(self.port_level_settings):
            number = settings.port.number
            if number in seen:
                yield (
                    ("portLevelSettings", i, "port", "number"),
                    f"port {number} is already configured in portLevelSettings[{seen[number]}]",
                )
            seen.setdefault(number, i)


@model
class Subset:
    name: Annotated[str, checks.dns_label]
    labels: Labels = FrozenDict()
    traffic_policy: TrafficPolicy | None = None


@model
class DestinationRuleSpec:
    host: Host
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "workloadSelector": "workload-scoped DestinationRules",
    }

    def check(self) -> Problems:
        seen: dict[str, int] = {}
        for i, subset in enumerate(self.subsets):
            if subset.name in seen:
                yield (
                    ("subsets", i, "name"),
                    f"subset {subset.name!r} is already defined in subsets[{seen[subset.name]}]",
                )
            seen.setdefault(subset.name, i)

    def check_in(self, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> Problems:
        yield from export_to_problems(self.export_to, namespace)


# --- WorkloadEntry ----------------------------------------------------------------------------


# A port's name in a WorkloadEntry or ServiceEntry: a DNS label (Istio's ValidatePortName).
PortName = Annotated[str, checks.dns_label]


def endpoint_address(value: str) -> str | None:
    """Where a workload is reached: an IP address or a host name."""
    if checks.host(value) is None:
        return None
    unix = " (unix domain sockets are not supported)" if value.startswith("unix://") else ""
    return f"must be an IP address or a host name such as 'vm-1.example.com'{unix}, got {value!r}"


@model
class WorkloadEntrySpec:
    address: Annotated[str, endpoint_address]
    ports: FrozenDict[PortName, Port] = FrozenDict()
    labels: Labels = FrozenDict()
    network: str | None = None
    locality: str | None = None
    weight: NonNegativeInt | None = None
    service_account: str | None = None


# --- Sidecar ----------------------------------------------------------------------------------


def egress_host(value: str) -> str | None:
    """`namespace/dnsName`: which services of which namespaces a Sidecar's proxies see.

    The namespace is a name, `.` (the proxy's own) or `*` (any); a `~` before it turns the
    entry into an exclusion (`~/x` or `~*/x`: from every namespace). The name is `*`, a
    `*.suffix` wildcard or a full host name (with a dot: short names are not expanded here).
    """
    namespace, slash, name = value.partition("/")
    example = "'./*', 'istio-system/*' or '*/reviews.default.svc.cluster.local'"
    if not slash:
        return f"must be namespace/dnsName such as {example}, got {value!r}"
    bare = namespace.removeprefix("~")
    if (bare or not namespace) and bare not in (".", "*") and checks.dns_label(bare):
        return (
            f"the namespace must be '.', '*' or a namespace name, optionally after '~' to "
            f"exclude, got {namespace!r}"
        )
    if name == "*" or (name.startswith("*.") and checks.host(name[2:]) is None):
        return None
    if "." in name and not name.startswith("*") and checks.host(name) is None:
        return None
    return (
        f"the name must be '*', '*.suffix' or a full host name such as "
        f"'reviews.default.svc.cluster.local', got {name!r} (in {value!r})"
    )


def _selector_labels(value: Mapping[str, str]) -> str | None:
    if any("*" in k or "*" in v for k, v in value.items()):
        return "wildcards are not supported in workload selectors"
    return checks.labels(value)


WorkloadSelectorLabels = Annotated[FrozenDict[str, str], _selector_labels]


@model
class WorkloadSelector:
    labels: WorkloadSelectorLabels = FrozenDict()


@model
class IstioEgressListener:
    hosts: tuple[Annotated[str, egress_host], ...]

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "port": "port-specific egress listeners",
        "bind": "binding egress listeners to an address",
        "captureMode": "per-listener capture modes",
    }

    def check(self) -> Problems:
        if not self.hosts:
            yield ("hosts",), "must list at least one namespace/dnsName"


class OutboundMode(enum.StrEnum):
    ALLOW_ANY = "ALLOW_ANY"
    REGISTRY_ONLY = "REGISTRY_ONLY"


@model
class OutboundTrafficPolicy:
    mode: OutboundMode = OutboundMode.ALLOW_ANY

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {"egressProxy": "egress proxies"}


@model
class SidecarSpec:
    workload_selector: WorkloadSelector | None = None
    egress: tuple[IstioEgressListener, ...] = ()
    outbound_traffic_policy: OutboundTrafficPolicy | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "ingress": "inbound listener settings",
        "inboundConnectionPool": "inbound connection pools",
    }

    def check(self) -> Problems:
        if not self.egress and self.outbound_traffic_policy is None:
            yield (), "must set egress or outboundTrafficPolicy (an empty Sidecar changes nothing)"
        if len(self.egress) > 1:
            # Istio needs a port on every egress listener but one; istiolite has no ports here.
            yield ("egress",), "istiolite supports one egress listener (without a port)"
