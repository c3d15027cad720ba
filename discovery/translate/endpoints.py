"""EDS: the endpoints behind each outbound cluster, with subsets selected by labels.

Unhealthy endpoints are left out, as Kubernetes leaves unready Pods out of a Service; endpoints
that are terminating but still serving are sent as DRAINING so Envoy finishes with them but
sends them nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from istiolite.discovery.model import Health, Ident, Proxy, ServiceEndpoint, Snapshot, subset_policy
from istiolite.discovery.translate.common import parse_cluster_name

ClusterLoadAssignment = endpoint_pb2.ClusterLoadAssignment

_HEALTH = {
    Health.HEALTHY: health_check_pb2.HEALTHY,
    Health.DRAINING: health_check_pb2.DRAINING,
}


def build_endpoints(
    snapshot: Snapshot, proxy: Proxy, names: Iterable[str]
) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """One assignment per requested outbound cluster name; unknown names get none."""
    found = (cluster_load_assignment(snapshot, proxy.namespace, name) for name in names)
    return [a for a in found if a is not None]


def endpoint_inputs(snapshot: Snapshot, namespace: str, name: str) -> tuple[object, ...]:
    """Everything `cluster_load_assignment` reads, compared by identity (see Ident)."""
    parsed = parse_cluster_name(name)
    hostname = parsed[3] if parsed else ""
    return (
        name,
        Ident(snapshot.services.get(hostname)),
        Ident(snapshot.destination_rule(hostname, namespace)),
    )


def cluster_load_assignment(
    snapshot: Snapshot, namespace: str, name: str
) -> endpoint_pb2.ClusterLoadAssignment | None:
    parsed = parse_cluster_name(name)
    if parsed is None or parsed[0] != "outbound":
        return None
    _, port, subset, hostname = parsed
    service = snapshot.services.get(hostname)
    if service is None:
        return None
    labels = None
    if subset:
        found, _ = subset_policy(snapshot.destination_rule(hostname, namespace), subset)
        if found is None:
            return None
        labels = found.labels
    selected = [
        e
        for e in service.endpoints.get(port, ())
        if e.health is not Health.UNHEALTHY
        and (labels is None or all(e.labels.get(k) == v for k, v in labels.items()))
    ]
    return assignment(name, selected)


def assignment(
    name: str, endpoints: Iterable[ServiceEndpoint]
) -> endpoint_pb2.ClusterLoadAssignment:
    return ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=address_pb2.Address(
                                socket_address=address_pb2.SocketAddress(
                                    address=e.address, port_value=e.port
                                )
                            )
                        ),
                        health_status=_HEALTH[e.health],
                        load_balancing_weight={"value": e.weight},
                    )
                    for e in endpoints
                ]
            )
        ],
    )
