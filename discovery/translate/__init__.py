"""Pure translation from a mesh Snapshot and one Proxy to Envoy's xDS resources.

No I/O, no asyncio, no gRPC: a function of its inputs, tested with golden files. One module per
xDS type, one `build_*` function per output:

    build_clusters(snapshot, proxy)          -> list[Cluster]                 (CDS)
    build_endpoints(snapshot, proxy, names)  -> list[ClusterLoadAssignment]   (EDS)
    build_listeners(snapshot, proxy)         -> list[Listener]                (LDS)
    build_routes(snapshot, proxy, names)     -> list[RouteConfiguration]      (RDS)
"""

from typing import Any

from google.protobuf import json_format

from istiolite.discovery.model import Proxy, Snapshot
from istiolite.discovery.translate.clusters import build_clusters
from istiolite.discovery.translate.endpoints import build_endpoints
from istiolite.discovery.translate.listeners import build_listeners
from istiolite.discovery.translate.routes import build_routes, http_ports

__all__ = ["build_clusters", "build_endpoints", "build_listeners", "build_routes", "config_dump"]


def config_dump(snapshot: Snapshot, proxy: Proxy) -> dict[str, list[dict[str, Any]]]:
    """Everything a proxy would be sent, as JSON-ready dicts: /debug/config_dump and goldens."""
    clusters = build_clusters(snapshot, proxy)
    eds_names = [c.name for c in clusters if c.HasField("eds_cluster_config")]
    route_names = [str(port) for port in http_ports(snapshot.outbound_services(proxy))]

    def as_dicts(messages: list[Any]) -> list[dict[str, Any]]:
        return [json_format.MessageToDict(m) for m in messages]

    return {
        "clusters": as_dicts(clusters),
        "endpoints": as_dicts(build_endpoints(snapshot, proxy, eds_names)),
        "listeners": as_dicts(build_listeners(snapshot, proxy)),
        "routes": as_dicts(build_routes(snapshot, proxy, route_names)),
    }
