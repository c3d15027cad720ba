"""CDS: one EDS cluster per service port and per DestinationRule subset, plus inbound clusters.

Policies follow Istio: LEAST_REQUEST by default (LEAST_CONN is the same thing in Envoy), a 10 s
connect timeout, circuit-breaker limits effectively unlimited unless the DestinationRule sets
them, and port-level settings replacing the rule's top-level ones for their port.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from istiolite.api.networking import (
    ConnectionPoolSettings,
    H2UpgradePolicy,
    LoadBalancerSettings,
    OutlierDetection,
    SimpleLB,
    TrafficPolicy,
)
from istiolite.api.resources import Protocol, ServicePort
from istiolite.discovery.model import Ident, MeshService, Proxy, Snapshot, instances, subset_policy
from istiolite.discovery.translate.common import (
    BLACKHOLE_CLUSTER,
    INBOUND_PASSTHROUGH_CLUSTER,
    INBOUND_PASSTHROUGH_SOURCE,
    PASSTHROUGH_CLUSTER,
    duration,
    inbound_cluster,
    outbound_cluster,
    pack,
)

Cluster = cluster_pb2.Cluster

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=10)
UNLIMITED = 2**32 - 1
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_SIMPLE = {
    SimpleLB.UNSPECIFIED: Cluster.LEAST_REQUEST,
    SimpleLB.LEAST_CONN: Cluster.LEAST_REQUEST,
    SimpleLB.LEAST_REQUEST: Cluster.LEAST_REQUEST,
    SimpleLB.RANDOM: Cluster.RANDOM,
    SimpleLB.ROUND_ROBIN: Cluster.ROUND_ROBIN,
}


def build_clusters(snapshot: Snapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    return [*outbound_clusters(snapshot, proxy), *inbound_clusters(snapshot, proxy)]


def outbound_clusters(snapshot: Snapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    """Clusters of the services a proxy calls: shared by its namespace's proxies of one Sidecar."""
    clusters = static_clusters()
    for service in snapshot.outbound_services(proxy):
        clusters.extend(service_clusters(snapshot, proxy.namespace, service))
    return clusters


def static_clusters() -> list[cluster_pb2.Cluster]:
    return [_passthrough(), _inbound_passthrough(), _blackhole()]


def cluster_inputs(snapshot: Snapshot, namespace: str, service: MeshService) -> tuple[object, ...]:
    """Everything `service_clusters` reads, compared by identity (see Ident)."""
    return (Ident(service), Ident(snapshot.destination_rule(service.hostname, namespace)))


def service_clusters(
    snapshot: Snapshot, namespace: str, service: MeshService
) -> list[cluster_pb2.Cluster]:
    """One cluster per port and subset; depends only on the service and its visible rule."""
    rule = snapshot.destination_rule(service.hostname, namespace)
    subsets = [None, *(s.name for s in rule.spec.subsets)] if rule else [None]
    clusters = []
    for port in service.ports:
        if port.protocol is Protocol.UDP:
            continue
        for subset in subsets:
            _, policy = subset_policy(rule, subset)
            clusters.append(_outbound(service, port, subset, _for_port(policy, port.port)))
    return clusters


def inbound_clusters(snapshot: Snapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    """One cluster per port the proxy's workload serves, to the app on localhost."""
    clusters = []
    seen: set[int] = set()
    for instance in instances(snapshot, proxy):
        if instance.target_port not in seen:
            seen.add(instance.target_port)
            clusters.append(_inbound(instance.target_port, instance.protocol))
    return clusters


@dataclass(frozen=True, slots=True)
class _Policy:
    """The effective policy for one port: port-level settings replace top-level ones."""

    load_balancer: LoadBalancerSettings | None
    connection_pool: ConnectionPoolSettings | None
    outlier_detection: OutlierDetection | None


def _for_port(policy: TrafficPolicy | None, port: int) -> _Policy:
    if policy is None:
        return _Policy(None, None, None)
    level = next((p for p in policy.port_level_settings if p.port.number == port), None)
    return _Policy(
        load_balancer=(level and level.load_balancer) or policy.load_balancer,
        connection_pool=(level and level.connection_pool) or policy.connection_pool,
        outlier_detection=(level and level.outlier_detection) or policy.outlier_detection,
    )


def _outbound(
    service: MeshService, port: ServicePort, subset: str | None, policy: _Policy
) -> cluster_pb2.Cluster:
    name = outbound_cluster(port.port, subset, service.hostname)
    cluster = Cluster(name=name, connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT))
    lb = policy.load_balancer
    if lb is not None and lb.simple is SimpleLB.PASSTHROUGH:
        cluster.type = Cluster.ORIGINAL_DST
        cluster.lb_policy = Cluster.CLUSTER_PROVIDED
    else:
        cluster.type = Cluster.EDS
        cluster.eds_cluster_config.service_name = name
        cluster.eds_cluster_config.eds_config.CopyFrom(
            config_source_pb2.ConfigSource(
                ads=config_source_pb2.AggregatedConfigSource(),
                resource_api_version=config_source_pb2.V3,
            )
        )
        _load_balancer(cluster, lb)
    cluster.circuit_breakers.CopyFrom(_circuit_breakers(policy.connection_pool))
    _connection_pool(cluster, policy.connection_pool, port.protocol)
    if policy.outlier_detection is not None:
        _outlier_detection(cluster, policy.outlier_detection)
    return cluster


def _load_balancer(cluster: cluster_pb2.Cluster, lb: LoadBalancerSettings | None) -> None:
    if lb is None or lb.simple is not None:
        cluster.lb_policy = _SIMPLE[lb.simple if lb and lb.simple else SimpleLB.UNSPECIFIED]
        return
    hashing = lb.consistent_hash
    assert hashing is not None  # validation guarantees simple xor consistentHash
    if hashing.maglev is not None:
        cluster.lb_policy = Cluster.MAGLEV
        if hashing.maglev.table_size:
            cluster.maglev_lb_config.table_size.value = hashing.maglev.table_size
        return
    cluster.lb_policy = Cluster.RING_HASH
    ring = hashing.ring_hash.minimum_ring_size if hashing.ring_hash else hashing.minimum_ring_size
    if ring:
        cluster.ring_hash_lb_config.minimum_ring_size.value = ring


def _circuit_breakers(pool: ConnectionPoolSettings | None) -> circuit_breaker_pb2.CircuitBreakers:
    tcp, http = (pool.tcp, pool.http) if pool else (None, None)

    def limit(value: int | None) -> wrappers_pb2.UInt32Value:
        return wrappers_pb2.UInt32Value(value=value if value else UNLIMITED)

    thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=limit(tcp.max_connections if tcp else None),
        max_pending_requests=limit(http.http1_max_pending_requests if http else None),
        max_requests=limit(http.http2_max_requests if http else None),
        max_retries=limit(http.max_retries if http and http.max_retries is not None else None),
        track_remaining=True,
    )
    if http is not None and http.max_retries == 0:
        thresholds.max_retries.value = 0
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[thresholds])


def _connection_pool(
    cluster: cluster_pb2.Cluster, pool: ConnectionPoolSettings | None, protocol: Protocol
) -> None:
    tcp, http = (pool.tcp, pool.http) if pool else (None, None)
    if tcp is not None:
        if tcp.connect_timeout is not None:
            cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
        if tcp.tcp_keepalive is not None:
            ka = cluster.upstream_connection_options.tcp_keepalive
            ka.SetInParent()
            if tcp.tcp_keepalive.probes:
                ka.keepalive_probes.value = tcp.tcp_keepalive.probes
            if tcp.tcp_keepalive.time:
                ka.keepalive_time.value = max(1, int(tcp.tcp_keepalive.time.total_seconds()))
            if tcp.tcp_keepalive.interval:
                ka.keepalive_interval.value = max(
                    1, int(tcp.tcp_keepalive.interval.total_seconds())
                )
    if not protocol.is_http:
        return
    options = http_protocol_options_pb2.HttpProtocolOptions()
    common = options.common_http_protocol_options
    if http is not None and http.idle_timeout is not None:
        common.idle_timeout.CopyFrom(duration(http.idle_timeout))
    if http is not None and http.max_requests_per_connection:
        common.max_requests_per_connection.value = http.max_requests_per_connection
    if tcp is not None and tcp.max_connection_duration is not None:
        common.max_connection_duration.CopyFrom(duration(tcp.max_connection_duration))
    upgrade = http.h2_upgrade_policy if http else None
    if http is not None and http.use_client_protocol:
        options.use_downstream_protocol_config.SetInParent()
    elif protocol in (Protocol.HTTP2, Protocol.GRPC) or upgrade is H2UpgradePolicy.UPGRADE:
        h2 = options.explicit_http_config.http2_protocol_options
        h2.SetInParent()
        if http is not None and http.max_concurrent_streams:
            h2.max_concurrent_streams.value = http.max_concurrent_streams
    else:
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))


def _outlier_detection(cluster: cluster_pb2.Cluster, od: OutlierDetection) -> None:
    out = outlier_detection_pb2.OutlierDetection()
    # Envoy enforces 5xx detection by default; Istio's field turns it on only when set.
    out.enforcing_consecutive_5xx.value = 100 if od.consecutive_5xx_errors else 0
    if od.consecutive_5xx_errors:
        out.consecutive_5xx.value = od.consecutive_5xx_errors
    if od.consecutive_gateway_errors:
        out.consecutive_gateway_failure.value = od.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = 100
    if od.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if od.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.value = od.consecutive_local_origin_failures
            out.enforcing_consecutive_local_origin_failure.value = 100
    if od.interval is not None:
        out.interval.CopyFrom(duration(od.interval))
    if od.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if od.max_ejection_percent is not None:
        out.max_ejection_percent.value = od.max_ejection_percent
    cluster.outlier_detection.CopyFrom(out)
    if od.min_health_percent is not None:
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(
            percent_pb2.Percent(value=float(od.min_health_percent))
        )


def _inbound(port: int, protocol: Protocol) -> cluster_pb2.Cluster:
    name = inbound_cluster(port)
    cluster = Cluster(
        name=name,
        type=Cluster.STATIC,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[_lb_endpoint("127.0.0.1", port)]
                )
            ],
        ),
    )
    if protocol in (Protocol.HTTP2, Protocol.GRPC):
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))
    return cluster


def _lb_endpoint(address: str, port: int) -> endpoint_components_pb2.LbEndpoint:
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=address, port_value=port)
            )
        )
    )


def _passthrough() -> cluster_pb2.Cluster:
    return Cluster(
        name=PASSTHROUGH_CLUSTER,
        type=Cluster.ORIGINAL_DST,
        lb_policy=Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
    )


def _inbound_passthrough() -> cluster_pb2.Cluster:
    cluster = _passthrough()
    cluster.name = INBOUND_PASSTHROUGH_CLUSTER
    cluster.upstream_bind_config.CopyFrom(
        address_pb2.BindConfig(
            source_address=address_pb2.SocketAddress(
                address=INBOUND_PASSTHROUGH_SOURCE, port_value=0
            )
        )
    )
    return cluster


def _blackhole() -> cluster_pb2.Cluster:
    return Cluster(
        name=BLACKHOLE_CLUSTER,
        type=Cluster.STATIC,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
    )
