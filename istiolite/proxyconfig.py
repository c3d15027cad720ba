"""`istiolite proxy-config`: what pilot-discovery sends one proxy, as istioctl's tables.

The input is pilot-discovery's /debug/config_dump for the proxy (clusters, endpoints, listeners
and routes as proto3 JSON). Where `istioctl proxy-config` asks the Envoy, this asks discovery:
it shows what the proxy is given; `istiolite proxy-status` says whether the proxy took it.
Pure: JSON in, rows out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Json = Mapping[str, Any]
SECTIONS = ("clusters", "listeners", "routes", "endpoints")
_HEADERS = {
    "clusters": ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"),
    "listeners": ("ADDRESS", "PORT", "MATCH", "DESTINATION"),
    "routes": ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "ROUTE"),
    "endpoints": ("ENDPOINT", "STATUS", "CLUSTER"),
}


def rows(section: str, dump: Json) -> list[tuple[str, ...]]:
    """The table of one section, header first."""
    build = {
        "clusters": _clusters,
        "listeners": _listeners,
        "routes": _routes,
        "endpoints": _endpoints,
    }[section]
    return [_HEADERS[section], *build(dump.get(section, []))]


def format_rows(table: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def _clusters(clusters: Sequence[Json]) -> Iterator[tuple[str, ...]]:
    for c in sorted(clusters, key=lambda c: _cluster_sort_key(str(c.get("name", "")))):
        name = str(c.get("name", ""))
        kind = str(c.get("type", "EDS" if "edsClusterConfig" in c else "STATIC"))
        parts = name.split("|")
        if len(parts) == 4:  # Istio's `direction|port|subset|fqdn`
            direction, port, subset, fqdn = parts
            yield fqdn or "-", port, subset or "-", direction, kind
        else:  # PassthroughCluster, BlackHoleCluster, InboundPassthroughCluster
            yield name, "-", "-", "-", kind


def _cluster_sort_key(name: str) -> tuple[str, int, str]:
    parts = name.split("|")
    if len(parts) != 4:
        return ("", 0, name)
    return (parts[3], int(parts[1]) if parts[1].isdigit() else 0, parts[2])


def _listeners(listeners: Sequence[Json]) -> Iterator[tuple[str, ...]]:
    for listener in listeners:
        socket = listener.get("address", {}).get("socketAddress", {})
        address, port = str(socket.get("address", "")), str(socket.get("portValue", ""))
        chains = list(listener.get("filterChains", []))
        if "defaultFilterChain" in listener:
            chains.append({**listener["defaultFilterChain"], "_default": True})
        for chain in chains:
            yield address, port, _chain_match(chain), _destination(chain)


def _chain_match(chain: Json) -> str:
    if chain.get("_default"):
        return "default"
    match = chain.get("filterChainMatch", {})
    found = []
    if "destinationPort" in match:
        found.append(f"dport {match['destinationPort']}")
    for key, label in (("transportProtocol", "transport"), ("applicationProtocols", "alpn")):
        if key in match:
            value = match[key]
            found.append(f"{label} {','.join(value) if isinstance(value, list) else value}")
    return "; ".join(found) or "ALL"


def _destination(chain: Json) -> str:
    for f in chain.get("filters", []):
        config = f.get("typedConfig", {})
        if "rds" in config:
            return f"Route: {config['rds'].get('routeConfigName', '')}"
        if "routeConfig" in config:
            hosts = config["routeConfig"].get("virtualHosts", [])
            clusters = sorted({c for vh in hosts for c in _route_clusters(vh)})
            return "Inline Route: " + (", ".join(clusters) or "-")
        if "cluster" in config:
            return f"Cluster: {config['cluster']}"
        if "weightedClusters" in config:
            names = [c.get("name", "") for c in config["weightedClusters"].get("clusters", [])]
            return "Clusters: " + ", ".join(names)
    return "-"


def _route_clusters(vhost: Json) -> Iterator[str]:
    for route in vhost.get("routes", []):
        action = route.get("route", {})
        if "cluster" in action:
            yield str(action["cluster"])
        for c in action.get("weightedClusters", {}).get("clusters", []):
            yield str(c.get("name", ""))


def _routes(configs: Sequence[Json]) -> Iterator[tuple[str, ...]]:
    for config in sorted(configs, key=lambda c: str(c.get("name", ""))):
        for vhost in config.get("virtualHosts", []):
            domains = [str(d) for d in vhost.get("domains", [])]
            shown = domains[0] if domains else "-"
            if len(domains) > 1:
                shown += f" +{len(domains) - 1} more"
            for route in vhost.get("routes", []):
                yield (
                    str(config.get("name", "")),
                    str(vhost.get("name", "")),
                    shown,
                    _route_match(route.get("match", {})),
                    str(route.get("name", "")) or "-",
                )


def _route_match(match: Json) -> str:
    if "path" in match:
        text = str(match["path"])
    elif "safeRegex" in match:
        text = f"regex {match['safeRegex'].get('regex', '')}"
    else:
        text = f"{match.get('prefix', '/')}*"
    headers = [str(h.get("name", "")) for h in match.get("headers", [])]
    if headers:
        text += f" (headers: {', '.join(headers)})"
    return text


def _endpoints(assignments: Sequence[Json]) -> Iterator[tuple[str, ...]]:
    for assignment in sorted(assignments, key=lambda a: str(a.get("clusterName", ""))):
        for locality in assignment.get("endpoints", []):
            for lb in locality.get("lbEndpoints", []):
                socket = lb.get("endpoint", {}).get("address", {}).get("socketAddress", {})
                address = f"{socket.get('address', '')}:{socket.get('portValue', '')}"
                status = str(lb.get("healthStatus", "UNKNOWN"))
                yield address, status, str(assignment.get("clusterName", ""))
