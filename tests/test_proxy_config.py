"""proxy-config turns pilot-discovery's config dump of one proxy into istioctl's tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from istiolite.proxyconfig import format_rows, rows

GOLDEN = Path(__file__).parent / "golden" / "discovery" / "mesh-productpage.json"


def dump() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GOLDEN.read_text())
    return loaded


def test_clusters_split_istio_names_into_fqdn_port_subset_and_direction() -> None:
    table = rows("clusters", dump())
    assert table[0] == ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE")
    assert ("reviews.default.svc.cluster.local", "9080", "v2", "outbound", "EDS") in table
    assert ("-", "9080", "-", "inbound", "STATIC") in table
    assert ("PassthroughCluster", "-", "-", "-", "ORIGINAL_DST") in table
    every_cluster = len(dump()["clusters"])
    assert len(table) == every_cluster + 1


def test_listeners_name_where_each_filter_chain_sends_traffic() -> None:
    table = rows("listeners", dump())
    assert ("0.0.0.0", "15001", "ALL", "Cluster: PassthroughCluster") in table
    assert ("0.0.0.0", "9080", "ALL", "Route: 9080") in table
    inbound = [r for r in table if r[1] == "15006"]
    assert ("0.0.0.0", "15006", "dport 9080", "Inline Route: inbound|9080||") in inbound
    assert any(r[2] == "default" for r in inbound)


def test_routes_list_every_route_of_every_virtual_host() -> None:
    table = rows("routes", dump())
    reviews = [r for r in table if r[1] == "reviews.default.svc.cluster.local:9080"]
    assert reviews, table
    assert all(
        r[0] == "9080" and r[2].startswith("reviews.default.svc.cluster.local +") for r in reviews
    )
    assert any("(headers: end-user)" in r[3] for r in reviews)
    routes = sum(len(vh["routes"]) for rc in dump()["routes"] for vh in rc["virtualHosts"])
    assert len(table) == routes + 1


def test_endpoints_show_address_health_and_cluster() -> None:
    table = rows("endpoints", dump())
    assert ("10.2.0.20:3306", "HEALTHY", "outbound|3306||mysql.db.svc.cluster.local") in table


def test_table_columns_line_up() -> None:
    lines = format_rows(rows("clusters", dump())).splitlines()
    start = lines[0].index("PORT")
    assert all(len(line) <= start or line[start - 1] == " " for line in lines)
