"""Pure translation from a mesh Snapshot and one Proxy to Envoy's xDS resources.

No I/O, no asyncio, no gRPC: a function of its inputs, tested with golden files. One module per
xDS type, one `build_*` function per output:

    build_clusters(snapshot, proxy)          -> list[Cluster]                 (CDS)
    build_endpoints(snapshot, proxy, names)  -> list[ClusterLoadAssignment]   (EDS)
    build_listeners(snapshot, proxy)         -> list[Listener]                (LDS)
    build_routes(snapshot, proxy, names)     -> list[RouteConfiguration]      (RDS)
"""

from istiolite.discovery.translate.clusters import build_clusters
from istiolite.discovery.translate.endpoints import build_endpoints
from istiolite.discovery.translate.listeners import build_listeners
from istiolite.discovery.translate.routes import build_routes

__all__ = ["build_clusters", "build_endpoints", "build_listeners", "build_routes"]
