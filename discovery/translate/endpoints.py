"""EDS: the endpoints behind each outbound cluster, with subsets selected by labels.

Unhealthy endpoints are left out, as Kubernetes leaves unready Pods out of a Service; endpoints
that are terminating but still serving are sent as DRAINING so Envoy finishes with them but
sends them nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from istiolite.discovery.model import Health, Proxy, ServiceEndpoint, Snapshot, subset_policy
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
    out = []
    for name in names:
        parsed = parse_cluster_name(name)
        if parsed is None or parsed[0] != "outbound":
            continue
        _, port, subset, hostname = parsed
        service = snapshot.services.get(hostname)
        if service is None:
            continue
        labels = None
        if subset:
            found, _ = subset_policy(snapshot.destination_rule(hostname, proxy.namespace), subset)
            if found is None:
                continue
            labels = found.labels
        selected = [
            e
            for e in service.endpoints.get(port, ())
            if e.health is not Health.UNHEALTHY
            and (labels is None or all(e.labels.get(k) == v for k, v in labels.items()))
        ]
        out.append(assignment(name, selected))
    return out


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
