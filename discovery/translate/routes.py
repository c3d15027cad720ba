"""RDS: one RouteConfiguration per outbound HTTP port, one virtual host per service on it.

A virtual host answers to every name a caller may use for the service (short name in the
proxy's own namespace, `name.ns`, `name.ns.svc`, the FQDN, the cluster IP; each with and
without the port). Its routes come from the VirtualService for the host, else one default route.
Unknown hosts fall through to `allow_any`, which passes the request on to where it was going.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from istiolite.api.networking import (
    GRPC_STATUS,
    MAX_DIRECT_RESPONSE_BODY,
    MESH,
    CorsPolicy,
    Destination,
    HeaderOperations,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    HTTPRouteDestination,
    OutboundMode,
    StringMatch,
    is_authority,
)
from istiolite.discovery.model import Ident, MeshService, Proxy, Snapshot, subset_policy
from istiolite.discovery.translate.common import (
    PASSTHROUGH_CLUSTER,
    duration,
    fraction,
    outbound_cluster,
    pack,
)

RouteConfiguration = route_pb2.RouteConfiguration

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
# Istio's default retry policy, used when a route names no `retries`.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_RETRIABLE_STATUS_CODES = (503,)
_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}
_NO_TIMEOUT = duration_pb2.Duration()
# What a route without `retries` gets (Istio's default), set on its virtual host.
DEFAULT_RETRY_POLICY = rc.RetryPolicy(
    retry_on=DEFAULT_RETRY_ON,
    num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_RETRY_ATTEMPTS),
    retriable_status_codes=DEFAULT_RETRIABLE_STATUS_CODES,
    host_selection_retry_max_attempts=5,
    retry_host_predicate=[
        rc.RetryPolicy.RetryHostPredicate(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
        )
    ],
)


def http_ports(services: Iterable[MeshService]) -> list[int]:
    """Every port some service speaks HTTP on: one listener and one route config each."""
    return sorted({p.port for s in services for p in s.ports if p.protocol.is_http})


def build_routes(
    snapshot: Snapshot, proxy: Proxy, names: Iterable[str]
) -> list[route_pb2.RouteConfiguration]:
    ports = set(http_ports(snapshot.outbound_services(proxy)))
    return [
        route_configuration(snapshot, proxy, int(name))
        for name in names
        if name.isdigit() and int(name) in ports
    ]


def route_configuration(
    snapshot: Snapshot, proxy: Proxy, port: int
) -> route_pb2.RouteConfiguration:
    config = route_config_shell(port)
    services = http_services(snapshot.outbound_services(proxy), port)
    config.virtual_hosts.extend(virtual_host(snapshot, proxy, s, port) for s in services)
    config.virtual_hosts.append(fallback_host(snapshot.outbound_mode(proxy)))
    return config


def route_config_shell(port: int) -> route_pb2.RouteConfiguration:
    """A route config without virtual hosts, which callers may append (even as bytes)."""
    # Clusters may arrive after routes that name them; Envoy must not reject the routes for it.
    # Direct responses may be as large as validation lets them (Istio's 1 MiB, not Envoy's 4 KiB).
    return route_pb2.RouteConfiguration(
        name=str(port),
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(
            value=MAX_DIRECT_RESPONSE_BODY
        ),
    )


def http_services(services: Iterable[MeshService], port: int) -> list[MeshService]:
    return [s for s in services if (sp := s.port(port)) is not None and sp.protocol.is_http]


def virtual_host(
    snapshot: Snapshot, proxy: Proxy, service: MeshService, port: int
) -> rc.VirtualHost:
    # Istio's default retry policy is set once per virtual host, where Istio repeats it on every
    # route: a route with its own policy overrides the host's entirely (Envoy does not merge
    # them), so behaviour is the same, and route configs are ~26% smaller, which is most of
    # what a routing change costs to push (docs/decisions.md).
    return rc.VirtualHost(
        name=f"{service.hostname}:{port}",
        domains=list(_domains(service, port, proxy.namespace, snapshot.shared_cluster_ips)),
        routes=list(_service_routes(snapshot, proxy, service, port)),
        retry_policy=DEFAULT_RETRY_POLICY,
    )


def virtual_host_inputs(
    snapshot: Snapshot, proxy: Proxy, service: MeshService, port: int
) -> tuple[object, ...]:
    """Everything `virtual_host` reads, as a key: equal inputs give an equal virtual host.

    Objects are compared by identity (unchanged resources keep their objects across snapshots),
    which makes this cheap enough to compute for every host of every route config. The proxy's
    namespace counts only where it shows: the short-name domain of a service in its own
    namespace, and routes that match on `sourceNamespace`. Visibility (exportTo) is in the
    identities of the resources chosen. So proxies of every other namespace share one virtual
    host for a service.
    """
    vs = snapshot.virtual_service(service.hostname, proxy.namespace)
    destinations: list[object] = []
    by_namespace = False
    for http in vs.spec.http if vs else ():
        by_namespace = by_namespace or any(m.source_namespace is not None for m in http.match)
        for dest in [r.destination for r in http.route] + ([http.mirror] if http.mirror else []):
            hostname = snapshot.resolve(dest.host, vs.meta.namespace if vs else proxy.namespace)
            target = snapshot.services.get(hostname)
            destinations.append(Ident(target))
            destinations.append(Ident(snapshot.destination_rule(hostname, proxy.namespace)))
    rule = snapshot.destination_rule(service.hostname, proxy.namespace)
    shared_ip = service.cluster_ip in snapshot.shared_cluster_ips
    labels = snapshot.caller_labels(proxy)
    return (
        port,
        service.namespace == proxy.namespace,
        proxy.namespace if by_namespace else None,
        labels,
        Ident(service),
        Ident(vs),
        Ident(rule),
        shared_ip,
        *destinations,
    )


ALLOW_ANY = rc.VirtualHost(
    name="allow_any",
    domains=["*"],
    routes=[
        rc.Route(
            name="allow_any",
            match=rc.RouteMatch(prefix="/"),
            route=rc.RouteAction(cluster=PASSTHROUGH_CLUSTER, timeout=duration_pb2.Duration()),
        )
    ],
)
# REGISTRY_ONLY: a host outside the proxy's services gets 502, as from Istio's `block_all`.
BLOCK_ALL = rc.VirtualHost(
    name="block_all",
    domains=["*"],
    routes=[
        rc.Route(
            name="block_all",
            match=rc.RouteMatch(prefix="/"),
            direct_response=rc.DirectResponseAction(status=502),
        )
    ],
)


def fallback_host(mode: OutboundMode) -> rc.VirtualHost:
    """The last virtual host of every route config: for hosts no service of the proxy has."""
    return BLOCK_ALL if mode is OutboundMode.REGISTRY_ONLY else ALLOW_ANY


def _domains(
    service: MeshService, port: int, namespace: str, shared_ips: frozenset[str]
) -> Iterator[str]:
    names = [
        service.hostname,
        f"{service.name}.{service.namespace}.svc",
        f"{service.name}.{service.namespace}",
    ]
    if service.namespace == namespace:
        names.append(service.name)  # short names mean the caller's own namespace
    if service.cluster_ip and service.cluster_ip not in shared_ips:
        names.append(service.cluster_ip)  # two hosts with one domain would be NACKed
    for name in names:
        yield name
        yield f"{name}:{port}"


def _service_routes(
    snapshot: Snapshot, proxy: Proxy, service: MeshService, port: int
) -> Iterator[rc.Route]:
    vs = snapshot.virtual_service(service.hostname, proxy.namespace)
    if vs is None or not vs.spec.http:
        yield rc.Route(
            name="default",
            match=rc.RouteMatch(prefix="/"),
            route=rc.RouteAction(
                cluster=outbound_cluster(port, None, service.hostname), timeout=_NO_TIMEOUT
            ),
        )
        return
    for i, http in enumerate(vs.spec.http):
        for match in http.match or (None,):
            if match is not None and not _applies(match, port, proxy):
                continue
            route = _route(snapshot, proxy, http, vs.meta.namespace, port)
            if route is None:
                continue
            route.name = http.name or f"{vs.meta.namespace}/{vs.meta.name}[{i}]"
            route.match.CopyFrom(route_match(match))
            yield route


def _applies(match: HTTPMatchRequest, port: int, proxy: Proxy) -> bool:
    """Matches decided when config is built, not per request: port, caller labels and namespace.
    A match that names gateways applies only at those: at a sidecar if `mesh` is among them."""
    if match.gateways and MESH not in match.gateways:
        return False
    if match.port is not None and match.port != port:
        return False
    if any(proxy.labels.get(k) != v for k, v in match.source_labels.items()):
        return False
    return match.source_namespace is None or match.source_namespace == proxy.namespace


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    out = rc.RouteMatch(prefix="/")
    if match is None:
        return out
    uri = match.uri
    if uri is not None and uri.exact is not None:
        out.path = uri.exact
    elif uri is not None and uri.prefix is not None:
        out.prefix = uri.prefix
    elif uri is not None and uri.regex is not None:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex))
    if match.ignore_uri_case:
        out.case_sensitive.value = False
    pseudo = {":method": match.method, ":authority": match.authority, ":scheme": match.scheme}
    for name, value in [*pseudo.items(), *match.headers.items()]:
        if value is not None:
            out.headers.append(_header_matcher(name, value, invert=False))
    for name, value in match.without_headers.items():
        out.headers.append(_header_matcher(name, value, invert=True))
    for name, value in match.query_params.items():
        if value.is_empty:  # `{}`: the parameter is present, with any value
            out.query_parameters.append(rc.QueryParameterMatcher(name=name, present_match=True))
        else:
            out.query_parameters.append(
                rc.QueryParameterMatcher(name=name, string_match=string_matcher(value))
            )
    return out


def _header_matcher(name: str, value: StringMatch, *, invert: bool) -> rc.HeaderMatcher:
    if value.means_present:
        return rc.HeaderMatcher(name=name, present_match=True, invert_match=invert)
    return rc.HeaderMatcher(name=name, string_match=string_matcher(value), invert_match=invert)


def string_matcher(value: StringMatch) -> string_pb2.StringMatcher:
    if value.exact is not None:
        return string_pb2.StringMatcher(exact=value.exact)
    if value.prefix is not None:
        return string_pb2.StringMatcher(prefix=value.prefix)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value.regex or ""))


def _route(
    snapshot: Snapshot, proxy: Proxy, http: HTTPRoute, namespace: str, port: int
) -> rc.Route | None:
    route = rc.Route()
    if http.redirect is not None:
        r = http.redirect
        redirect = rc.RedirectAction(response_code=_REDIRECT_CODES[r.redirect_code or 301])
        if r.prefix_rewrite:  # an empty uri or prefixRewrite is none, as in Istio
            redirect.prefix_rewrite = r.prefix_rewrite
        elif r.uri:
            redirect.path_redirect = r.uri
        if r.authority is not None:
            redirect.host_redirect = r.authority
        if r.port:
            redirect.port_redirect = r.port
        if r.scheme is not None:
            redirect.scheme_redirect = r.scheme.value
        route.redirect.CopyFrom(redirect)
    elif http.direct_response is not None:
        d = http.direct_response
        route.direct_response.status = d.status
        if d.body is not None and d.body.string is not None:
            route.direct_response.body.inline_string = d.body.string
        elif d.body is not None:
            route.direct_response.body.inline_bytes = d.body.payload()
    else:
        action = _route_action(snapshot, proxy, http, namespace, port)
        if action is None:
            return None
        route.route.CopyFrom(action)
        single = _weighted(http.route)
        if len(single) == 1 and single[0].headers is not None:
            _headers(route, single[0].headers.request, single[0].headers.response)
    if http.headers is not None:
        _headers(route, http.headers.request, http.headers.response)
    if route.HasField("route"):
        _rewrite_authority(route.route, http)
    if http.fault is not None:
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(pack(fault(http.fault)))
    if http.cors_policy is not None:
        route.typed_per_filter_config[CORS_FILTER].CopyFrom(pack(cors(http.cors_policy)))
    return route


def _route_action(
    snapshot: Snapshot, proxy: Proxy, http: HTTPRoute, namespace: str, port: int
) -> rc.RouteAction | None:
    weighted = []
    destinations = _weighted(http.route)
    for dest in destinations:
        name = _cluster_for(snapshot, dest.destination, namespace, port)
        if name is None:
            continue
        cw = rc.WeightedCluster.ClusterWeight(
            name=name, weight=wrappers_pb2.UInt32Value(value=dest.weight or 100)
        )
        if dest.headers is not None and len(destinations) > 1:
            _headers(cw, dest.headers.request, dest.headers.response)
            if dest.headers.request is not None:
                for _, authority in dest.headers.request.authority():
                    cw.host_rewrite_literal = authority
        weighted.append(cw)
    if not weighted:
        return None
    action = rc.RouteAction(
        timeout=duration(http.timeout) if http.timeout is not None else _NO_TIMEOUT
    )
    if len(weighted) == 1:
        action.cluster = weighted[0].name
    else:
        action.weighted_clusters.clusters.extend(weighted)
    if http.retries is not None:  # without, the virtual host's default policy applies
        action.retry_policy.CopyFrom(retry_policy(http.retries))
    if http.mirror is not None:
        mirror = _cluster_for(snapshot, http.mirror, namespace, port)
        if mirror is not None:
            percent = http.mirror_percentage.value if http.mirror_percentage else 100.0
            action.request_mirror_policies.append(
                rc.RouteAction.RequestMirrorPolicy(
                    cluster=mirror,
                    runtime_fraction=base_pb2.RuntimeFractionalPercent(
                        default_value=fraction(percent)
                    ),
                )
            )
    if http.rewrite is not None:
        rw = http.rewrite
        if rw.uri:
            action.prefix_rewrite = rw.uri
        if rw.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.regex = rw.uri_regex_rewrite.match
            action.regex_rewrite.substitution = rw.uri_regex_rewrite.rewrite
        if rw.authority is not None:
            action.host_rewrite_literal = rw.authority
    action.hash_policy.extend(_hash_policy(snapshot, proxy, http.route[0].destination, namespace))
    return action


def _weighted(route: tuple[HTTPRouteDestination, ...]) -> list[HTTPRouteDestination]:
    """The destinations that get traffic: among several, Istio drops those without weight."""
    return list(route) if len(route) == 1 else [d for d in route if d.weight]


def _rewrite_authority(action: rc.RouteAction, http: HTTPRoute) -> None:
    """Setting `:authority` or `host` is a host rewrite (Envoy cannot set them as headers).

    The route's own headers and rewrite win over a single destination's, as in Istio.
    """
    single = _weighted(http.route)
    sources = [
        http.headers.request if http.headers else None,
        single[0].headers.request if len(single) == 1 and single[0].headers else None,
    ]
    for ops in sources:
        for _, authority in ops.authority() if ops is not None else ():
            if not action.host_rewrite_literal:
                action.host_rewrite_literal = authority


def _cluster_for(snapshot: Snapshot, dest: Destination, namespace: str, port: int) -> str | None:
    hostname = snapshot.resolve(dest.host, namespace)
    number = dest.port.number if dest.port else None
    service = snapshot.services.get(hostname)
    if number is None and service is not None:
        if len(service.ports) == 1:
            number = service.ports[0].port
        elif service.port(port) is not None:
            number = port
    if number is None:
        number = port
    return outbound_cluster(number, dest.subset, hostname)


def _hash_policy(
    snapshot: Snapshot, proxy: Proxy, dest: Destination, namespace: str
) -> list[rc.RouteAction.HashPolicy]:
    """Consistent hashing is configured on the cluster but keyed on the route, as in Istio."""
    hostname = snapshot.resolve(dest.host, namespace)
    _, policy = subset_policy(snapshot.destination_rule(hostname, proxy.namespace), dest.subset)
    lb = policy.load_balancer if policy else None
    hashing = lb.consistent_hash if lb else None
    if hashing is None:
        return []
    hp = rc.RouteAction.HashPolicy()
    if hashing.http_header_name is not None:
        hp.header.header_name = hashing.http_header_name
    elif hashing.http_cookie is not None:
        hp.cookie.name = hashing.http_cookie.name
        if hashing.http_cookie.path:
            hp.cookie.path = hashing.http_cookie.path
        if hashing.http_cookie.ttl is not None:
            hp.cookie.ttl.CopyFrom(duration(hashing.http_cookie.ttl))
    elif hashing.use_source_ip:
        hp.connection_properties.source_ip = True
    elif hashing.http_query_parameter_name is not None:
        hp.query_parameter.name = hashing.http_query_parameter_name
    return [hp]


def retry_policy(retries: HTTPRetry) -> rc.RetryPolicy:
    """A route's own policy, over Istio's default; `attempts: 0` means no retries at all."""
    if retries.attempts == 0:
        # An explicit empty policy: leaving it unset would let the host's default apply.
        return rc.RetryPolicy(num_retries=wrappers_pb2.UInt32Value(value=0))
    policy = rc.RetryPolicy()
    policy.CopyFrom(DEFAULT_RETRY_POLICY)
    policy.num_retries.value = retries.attempts
    if retries.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    if retries.retry_on:
        tokens = [t.strip() for t in retries.retry_on.split(",") if t.strip()]
        codes = [int(t) for t in tokens if t.isdigit()]
        conditions = [t for t in tokens if not t.isdigit()]
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        policy.retry_on = ",".join(conditions)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    return policy


def fault(spec: HTTPFaultInjection) -> fault_pb2.HTTPFault:
    out = fault_pb2.HTTPFault()
    if spec.delay is not None:
        out.delay.fixed_delay.CopyFrom(duration(spec.delay.fixed_delay))
        out.delay.percentage.CopyFrom(
            fraction(spec.delay.percentage.value if spec.delay.percentage else 100)
        )
    if spec.abort is not None:
        if spec.abort.http_status is not None:
            out.abort.http_status = spec.abort.http_status
        else:
            out.abort.grpc_status = GRPC_STATUS[spec.abort.grpc_status or "UNKNOWN"]
        out.abort.percentage.CopyFrom(
            fraction(spec.abort.percentage.value if spec.abort.percentage else 100)
        )
    return out


def cors(spec: CorsPolicy) -> cors_pb2.CorsPolicy:
    out = cors_pb2.CorsPolicy(
        allow_origin_string_match=[string_matcher(o) for o in spec.allow_origins],
        allow_methods=",".join(spec.allow_methods),
        allow_headers=",".join(spec.allow_headers),
        expose_headers=",".join(spec.expose_headers),
    )
    if spec.max_age is not None:
        out.max_age = str(int(spec.max_age.total_seconds()))
    if spec.allow_credentials is not None:
        out.allow_credentials.value = spec.allow_credentials
    return out


def _headers(
    target: rc.Route | rc.WeightedCluster.ClusterWeight,
    request: HeaderOperations | None,
    response: HeaderOperations | None,
) -> None:
    for ops, add, remove in (
        (request, target.request_headers_to_add, target.request_headers_to_remove),
        (response, target.response_headers_to_add, target.response_headers_to_remove),
    ):
        if ops is None:
            continue
        for items, action in (
            (ops.set, base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
            (ops.add, base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
        ):
            for key, value in items.items():
                if is_authority(key):
                    continue  # a host rewrite, set on the route action
                add.append(
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=key, value=value), append_action=action
                    )
                )
        remove.extend(ops.remove)
