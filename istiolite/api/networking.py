"""Istio's networking.istio.io/v1 VirtualService, DestinationRule, WorkloadEntry and Sidecar.

Field names and meanings are Istio's, so Istio YAML for the supported subset works unchanged.
Fields istiolite does not implement are listed in each class's UNSUPPORTED map and rejected with
a reason; nothing is silently ignored. docs/api.md lists the same fields for users.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, ClassVar

from istiolite.api import checks
from istiolite.api.checks import Percent, Port, Regex
from istiolite.api.decode import FrozenDict, model
from istiolite.api.errors import Path

Problems = Iterator[tuple[Path, str]]

Host = Annotated[str, checks.host]
HostPattern = Annotated[str, checks.host_pattern]
HeaderName = Annotated[str, checks.header_name]
Timeout = Annotated[timedelta, checks.non_negative_duration]
PositiveDuration = Annotated[timedelta, checks.positive_duration]
NonNegativeInt = Annotated[int, checks.at_least(0)]
PositiveInt = Annotated[int, checks.at_least(1)]


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
    regex: Regex | None = None

    def check(self) -> Problems:
        present = _set_fields(self, "exact", "prefix", "regex")
        if len(present) > 1:
            yield (), f"must set only one of exact, prefix, regex, got {', '.join(present)}"

    @property
    def is_empty(self) -> bool:
        return self.exact is None and self.prefix is None and self.regex is None


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


# --- VirtualService ---------------------------------------------------------------------------


@model
class HTTPMatchRequest:
    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: FrozenDict[HeaderName, StringMatch] = FrozenDict()
    port: Port | None = None
    source_labels: FrozenDict[str, str] = FrozenDict()
    query_params: FrozenDict[str, StringMatch] = FrozenDict()
    ignore_uri_case: bool = False
    without_headers: FrozenDict[HeaderName, StringMatch] = FrozenDict()
    source_namespace: str | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "gateways": "istiolite routes mesh traffic only; match on gateways has no meaning",
        "statPrefix": "per-match stat prefixes",
    }

    def check(self) -> Problems:
        for key in ("uri", "scheme", "method", "authority"):
            match = getattr(self, key)
            if match is not None and match.is_empty:
                yield (key,), "must set one of exact, prefix, regex"
        for key, match in self.query_params.items():
            if match.is_empty:
                yield ("queryParams", key), "must set one of exact, prefix, regex"
        for name in self.headers.keys() & self.without_headers.keys():
            yield ("withoutHeaders", name), f"header {name!r} is also required under headers"


@model
class HeaderOperations:
    set: FrozenDict[HeaderName, str] = FrozenDict()
    add: FrozenDict[HeaderName, str] = FrozenDict()
    remove: tuple[HeaderName, ...] = ()


@model
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@model
class HTTPRouteDestination:
    destination: Destination
    weight: Annotated[int, checks.in_range(0, 100)] | None = None
    headers: Headers | None = None


class RedirectScheme(enum.StrEnum):
    HTTP = "http"
    HTTPS = "https"


@model
class HTTPRedirect:
    uri: str | None = None
    authority: str | None = None
    port: Port | None = None
    scheme: RedirectScheme | None = None
    redirect_code: int | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "derivePort": "deriving the redirect port; set port explicitly",
    }

    def check(self) -> Problems:
        if self.redirect_code is not None and self.redirect_code not in (301, 302, 303, 307, 308):
            yield ("redirectCode",), f"must be 301, 302, 303, 307 or 308, got {self.redirect_code}"
        if not _set_fields(self, "uri", "authority", "port", "scheme"):
            yield (), "must set at least one of uri, authority, port, scheme"


@model
class RegexRewrite:
    match: Regex
    rewrite: str


@model
class HTTPRewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None

    def check(self) -> Problems:
        if self.uri is not None and self.uri_regex_rewrite is not None:
            yield (), "must set only one of uri, uriRegexRewrite"
        if not _set_fields(self, "uri", "authority", "uri_regex_rewrite"):
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


def _retry_on(value: str) -> str | None:
    for token in (t.strip() for t in value.split(",")):
        if token in RETRY_ON_CONDITIONS:
            continue
        if token.isdigit() and 100 <= int(token) <= 599:
            continue
        accepted = ", ".join(sorted(RETRY_ON_CONDITIONS))
        return f"unknown retry condition {token!r}; accepted: {accepted}, or an HTTP status code"
    return None


@model
class HTTPRetry:
    # Istio semantics: `retries` present with attempts 0 (or omitted) turns retries off.
    attempts: NonNegativeInt = 0
    per_try_timeout: PositiveDuration | None = None
    retry_on: Annotated[str, _retry_on] | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "retryRemoteLocalities": "locality-aware retries (istiolite has no locality routing)",
        "backoff": "custom retry backoff; Envoy's default (25ms base) applies",
    }


@model
class Delay:
    fixed_delay: Timeout
    percentage: Percentage | None = None

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
    percentage: Percentage | None = None

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


@model
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: Timeout | None = None
    allow_credentials: bool | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "allowOrigin": "deprecated by Istio; use allowOrigins",
        "unmatchedPreflights": "unmatched preflight handling",
    }

    def check(self) -> Problems:
        for i, origin in enumerate(self.allow_origins):
            if origin.is_empty:
                yield ("allowOrigins", i), "must set one of exact, prefix, regex"


@model
class HTTPBody:
    string: str | None = None
    bytes: str | None = None

    def check(self) -> Problems:
        yield from _exactly_one(self, ("string", "string"), ("bytes", "bytes"))


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
        if self.rewrite is not None and self.redirect is not None:
            yield ("rewrite",), "cannot be combined with redirect"
        if self.mirror_percentage is not None and self.mirror is None:
            yield ("mirrorPercentage",), "needs mirror"
        yield from _weights(self.route)


def _weights(route: tuple[HTTPRouteDestination, ...] | tuple[RouteDestination, ...]) -> Problems:
    if len(route) == 1 and route[0].weight is None:
        return
    weights = [r.weight or 0 for r in route]
    if route and sum(weights) != 100:
        shown = " + ".join(str(w) for w in weights)
        yield ("route",), f"weights must sum to 100, got {shown} = {sum(weights)}"


@model
class L4MatchAttributes:
    destination_subnets: tuple[Annotated[str, checks.cidr], ...] = ()
    port: Port | None = None
    source_labels: FrozenDict[str, str] = FrozenDict()
    source_namespace: str | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "gateways": "istiolite routes mesh traffic only; match on gateways has no meaning",
        "sourceSubnet": "matching on the source subnet",
    }


@model
class RouteDestination:
    destination: Destination
    weight: Annotated[int, checks.in_range(0, 100)] | None = None


@model
class TCPRoute:
    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()

    def check(self) -> Problems:
        if not self.route:
            yield ("route",), "must have at least one destination"
        yield from _weights(self.route)


def _mesh_only(value: str) -> str | None:
    if value == "mesh":
        return None
    return f"istiolite has no ingress gateways; only 'mesh' is accepted, got {value!r}"


@model
class VirtualServiceSpec:
    hosts: tuple[HostPattern, ...]
    gateways: tuple[Annotated[str, _mesh_only], ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[str, ...] = ()

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "tls": "TLS (SNI) routes",
    }

    def check(self) -> Problems:
        if not self.hosts:
            yield ("hosts",), "must list at least one host"
        if not self.http and not self.tcp:
            yield (), "must have http or tcp routes"
        yield from _export_to(self.export_to)


def _export_to(values: tuple[str, ...]) -> Problems:
    for i, value in enumerate(values):
        if value not in (".", "*") and checks.dns_label(value):
            yield ("exportTo", i), f"must be '.', '*' or a namespace name, got {value!r}"


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
    name: str
    path: str | None = None
    ttl: Timeout | None = None


@model
class RingHash:
    minimum_ring_size: PositiveInt | None = None


@model
class Maglev:
    table_size: PositiveInt | None = None


@model
class ConsistentHashLB:
    http_header_name: HeaderName | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: Maglev | None = None
    minimum_ring_size: PositiveInt | None = None

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
        "warmupDurationSecs": "slow start",
        "warmup": "slow start",
    }

    def check(self) -> Problems:
        yield from _exactly_one(self, ("simple", "simple"), ("consistent_hash", "consistentHash"))


@model
class TcpKeepalive:
    probes: PositiveInt | None = None
    time: PositiveDuration | None = None
    interval: PositiveDuration | None = None


@model
class TCPSettings:
    max_connections: PositiveInt | None = None
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
    http1_max_pending_requests: PositiveInt | None = None
    http2_max_requests: PositiveInt | None = None
    max_requests_per_connection: NonNegativeInt | None = None
    max_retries: NonNegativeInt | None = None
    idle_timeout: Timeout | None = None
    h2_upgrade_policy: H2UpgradePolicy | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: PositiveInt | None = None


@model
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


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


@model
class TrafficPolicy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    tls: ClientTLSSettings | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = _TRAFFIC_POLICY_UNSUPPORTED

    def check(self) -> Problems:
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
    labels: FrozenDict[str, str] = FrozenDict()
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
        yield from _export_to(self.export_to)


# --- WorkloadEntry ----------------------------------------------------------------------------


@model
class WorkloadEntrySpec:
    address: Annotated[str, checks.host]
    ports: FrozenDict[str, Port] = FrozenDict()
    labels: FrozenDict[str, str] = FrozenDict()
    network: str | None = None
    locality: str | None = None
    weight: NonNegativeInt | None = None
    service_account: str | None = None


# --- Sidecar ----------------------------------------------------------------------------------


def egress_host(value: str) -> str | None:
    """`namespace/dnsName`: which services of which namespaces a Sidecar's proxies see.

    The namespace is a name, `.` (the proxy's own), `*` (any) or `~` (none); the name is a
    full host name, `*` or a `*.` wildcard prefix.
    """
    namespace, slash, name = value.partition("/")
    example = "'./*', 'istio-system/*' or '*/reviews.default.svc.cluster.local'"
    if not slash:
        return f"must be namespace/dnsName such as {example}, got {value!r}"
    if namespace not in (".", "*", "~") and checks.dns_label(namespace):
        return f"the namespace must be '.', '*', '~' or a namespace name, got {namespace!r}"
    if name != "*" and checks.host_pattern(name):
        return f"the name must be '*', '*.suffix' or a host name, got {name!r} (in {value!r})"
    return None


@model
class WorkloadSelector:
    labels: FrozenDict[str, str] = FrozenDict()


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
        if len(self.egress) > 1:
            # Istio needs a port on every egress listener but one; istiolite has no ports here.
            yield ("egress",), "istiolite supports one egress listener (without a port)"
