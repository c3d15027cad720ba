"""LDS: the sidecar's capture listeners and the per-port listeners they hand connections to.

Outbound: the capture rules send the app's connections to `virtualOutbound` (15001), which
looks up a listener for the connection's original destination: `0.0.0.0_<port>` for an HTTP
port (routes by Host, via RDS), `<clusterIP>_<port>` for a TCP port (tcp_proxy). Neither binds a
socket. Anything else passes through untouched.

Inbound: connections to the workload arrive at `virtualInbound` (15006); one filter chain per
port the workload serves forwards to the app on 127.0.0.1, and any other port passes through
to the original destination from 127.0.0.6 so the capture rules do not loop it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import wrappers_pb2

from istiolite.api.networking import MESH, OutboundMode
from istiolite.api.resources import Protocol
from istiolite.discovery.model import Ident, Instance, MeshService, Proxy, Snapshot, instances
from istiolite.discovery.translate.common import (
    BLACKHOLE_CLUSTER,
    INBOUND_PASSTHROUGH_CLUSTER,
    INBOUND_PORT,
    OUTBOUND_PORT,
    PASSTHROUGH_CLUSTER,
    VIRTUAL_INBOUND,
    VIRTUAL_OUTBOUND,
    duration,
    inbound_cluster,
    outbound_cluster,
    pack,
)
from istiolite.discovery.translate.routes import CORS_FILTER, FAULT_FILTER, http_ports

Listener = listener_pb2.Listener
FilterChain = listener_components_pb2.FilterChain

_ADS = config_source_pb2.ConfigSource(
    ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
)


def build_listeners(snapshot: Snapshot, proxy: Proxy) -> list[listener_pb2.Listener]:
    return [*outbound_listeners(snapshot, proxy), inbound_listener(snapshot, proxy)]


def outbound_listeners(snapshot: Snapshot, proxy: Proxy) -> list[listener_pb2.Listener]:
    """Shared by proxies with the same namespace and labels (TCP routes match on labels)."""
    services = snapshot.outbound_services(proxy)
    listeners = [_virtual_outbound(snapshot.outbound_mode(proxy))]
    listeners.extend(_http_listener(port) for port in http_ports(services))
    listeners.extend(_tcp_listeners(snapshot, proxy, services))
    return listeners


def outbound_listener_inputs(snapshot: Snapshot) -> tuple[object, ...]:
    """What `outbound_listeners` reads besides the services and the proxy's namespace and labels.

    Only the VirtualServices of TCP ports shape listeners (HTTP routes go out by RDS), so an
    edit to an HTTP route leaves every listener as it is. Compared by identity; it holds every
    VirtualService that could apply to a TCP host, exact or wildcard, visible or not.
    """
    tcp_hosts = [
        s.hostname
        for s in snapshot.services.values()
        if s.cluster_ip and any(_is_tcp(p.protocol) for p in s.ports)
    ]
    return (
        tuple((h, *map(Ident, snapshot.routes_by_host.get(h, ()))) for h in tcp_hosts),
        tuple(Ident(vs) for _, vs in snapshot.wildcard_routes),
    )


def _is_tcp(protocol: Protocol) -> bool:
    return not protocol.is_http and protocol is not Protocol.UDP


def inbound_listener(snapshot: Snapshot, proxy: Proxy) -> listener_pb2.Listener:
    return _virtual_inbound(instances(snapshot, proxy))


def _address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def _tcp_proxy(stat_prefix: str, cluster: str) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(
        name="envoy.filters.network.tcp_proxy",
        typed_config=pack(tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)),
    )


def _virtual_outbound(mode: OutboundMode) -> listener_pb2.Listener:
    # Traffic to an address no listener claims: to where it was going, or nowhere.
    fallback = BLACKHOLE_CLUSTER if mode is OutboundMode.REGISTRY_ONLY else PASSTHROUGH_CLUSTER
    return Listener(
        name=VIRTUAL_OUTBOUND,
        address=_address("0.0.0.0", OUTBOUND_PORT),
        use_original_dst=wrappers_pb2.BoolValue(value=True),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[
            FilterChain(
                name=f"{VIRTUAL_OUTBOUND}-catchall-tcp",
                filters=[_tcp_proxy(fallback, fallback)],
            )
        ],
    )


def _http_filters(*, outbound: bool) -> list[hcm.HttpFilter]:
    filters = []
    if outbound:
        # Empty filter configs: faults and CORS come per route, from the VirtualService.
        filters.append(hcm.HttpFilter(name=FAULT_FILTER, typed_config=pack(fault_pb2.HTTPFault())))
        filters.append(hcm.HttpFilter(name=CORS_FILTER, typed_config=pack(cors_pb2.Cors())))
    filters.append(
        hcm.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))
    )
    return filters


def _http_connection_manager(
    stat_prefix: str, *, outbound: bool, **route: object
) -> listener_components_pb2.Filter:
    manager = hcm.HttpConnectionManager(
        stat_prefix=stat_prefix,
        http_filters=_http_filters(outbound=outbound),
        normalize_path=wrappers_pb2.BoolValue(value=True),
        # Apps propagate x-request-id for tracing; keep the one they send.
        preserve_external_request_id=True,
        upgrade_configs=[hcm.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        **route,
    )
    return listener_components_pb2.Filter(
        name="envoy.filters.network.http_connection_manager", typed_config=pack(manager)
    )


def _http_listener(port: int) -> listener_pb2.Listener:
    name = f"0.0.0.0_{port}"
    return Listener(
        name=name,
        address=_address("0.0.0.0", port),
        bind_to_port=wrappers_pb2.BoolValue(value=False),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[
            FilterChain(
                filters=[
                    _http_connection_manager(
                        f"outbound_{name}",
                        outbound=True,
                        rds=hcm.Rds(config_source=_ADS, route_config_name=str(port)),
                    )
                ]
            )
        ],
    )


def _tcp_listeners(
    snapshot: Snapshot, proxy: Proxy, services: list[MeshService]
) -> Iterator[listener_pb2.Listener]:
    for service in services:
        if not service.cluster_ip:
            continue  # headless: no address to capture on
        for sp in service.ports:
            if not _is_tcp(sp.protocol):
                continue
            name = f"{service.cluster_ip}_{sp.port}"
            yield Listener(
                name=name,
                address=_address(service.cluster_ip, sp.port),
                bind_to_port=wrappers_pb2.BoolValue(value=False),
                traffic_direction=base_pb2.OUTBOUND,
                filter_chains=[
                    FilterChain(filters=[_tcp_route(snapshot, proxy, service, sp.port, name)])
                ],
            )


def _tcp_route(
    snapshot: Snapshot, proxy: Proxy, service: MeshService, port: int, stat_prefix: str
) -> listener_components_pb2.Filter:
    """The first TCPRoute of the host's VirtualService that applies here, else the service."""
    vs = snapshot.virtual_service(service.hostname, proxy.namespace)
    for tcp in vs.spec.tcp if vs else ():
        applies = not tcp.match or any(
            (not m.gateways or MESH in m.gateways)
            and (m.port is None or m.port == port)
            and all(proxy.labels.get(k) == v for k, v in m.source_labels.items())
            and (m.source_namespace is None or m.source_namespace == proxy.namespace)
            for m in tcp.match
        )
        if not applies or vs is None:
            continue
        clusters = [
            tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(
                name=outbound_cluster(
                    r.destination.port.number if r.destination.port else port,
                    r.destination.subset,
                    snapshot.resolve(r.destination.host, vs.meta.namespace),
                ),
                weight=r.weight or 100,
            )
            for r in tcp.route
            if r.weight or len(tcp.route) == 1  # Istio drops unweighted ones among several
        ]
        proxy_config = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
        if len(clusters) == 1:
            proxy_config.cluster = clusters[0].name
        else:
            proxy_config.weighted_clusters.clusters.extend(clusters)
        return listener_components_pb2.Filter(
            name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy_config)
        )
    return _tcp_proxy(stat_prefix, outbound_cluster(port, None, service.hostname))


def _virtual_inbound(served: tuple[Instance, ...]) -> listener_pb2.Listener:
    chains = []
    seen: set[int] = set()
    for instance in served:
        port = instance.target_port
        if port in seen:
            continue
        seen.add(port)
        cluster = inbound_cluster(port)
        match = listener_components_pb2.FilterChainMatch(
            destination_port=wrappers_pb2.UInt32Value(value=port)
        )
        if instance.protocol.is_http:
            local = route_pb2.RouteConfiguration(
                name=cluster,
                virtual_hosts=[
                    rc.VirtualHost(
                        name=cluster,
                        domains=["*"],
                        routes=[
                            rc.Route(
                                name="default",
                                match=rc.RouteMatch(prefix="/"),
                                route=rc.RouteAction(
                                    cluster=cluster, timeout=duration(timedelta(0))
                                ),
                            )
                        ],
                    )
                ],
            )
            chain_filter = _http_connection_manager(
                f"inbound_0.0.0.0_{port}", outbound=False, route_config=local
            )
        else:
            chain_filter = _tcp_proxy(cluster, cluster)
        chains.append(FilterChain(name=cluster, filter_chain_match=match, filters=[chain_filter]))
    return Listener(
        name=VIRTUAL_INBOUND,
        address=_address("0.0.0.0", INBOUND_PORT),
        traffic_direction=base_pb2.INBOUND,
        listener_filters=[
            listener_components_pb2.ListenerFilter(
                name="envoy.filters.listener.original_dst",
                typed_config=pack(original_dst_pb2.OriginalDst()),
            )
        ],
        filter_chains=chains,
        default_filter_chain=FilterChain(
            name="inbound-passthrough",
            filters=[_tcp_proxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER)],
        ),
    )
