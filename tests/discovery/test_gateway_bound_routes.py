"""Sidecars are the `mesh` gateway: what is bound to other gateways never reaches them.

A VirtualService bound only to an ingress gateway may claim `hosts: ["*"]` (Istio's
bookinfo-gateway.yaml does); a match that names gateways applies only at those. Neither may
change what a sidecar is sent.
"""

from __future__ import annotations

from typing import Any

from istiolite.api import parse_yaml
from istiolite.discovery.model import Snapshot, build_snapshot
from istiolite.discovery.translate import config_dump
from tests.discovery.test_translate_golden import CASES, HERE, load_mesh

GATEWAY_ONLY = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: ratings, port: {number: 9080}}}]
"""

REVIEWS_SPLIT_BY_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  gateways: [mesh, bookinfo-gateway]
  http:
  - name: from-the-gateway
    match: [{gateways: [bookinfo-gateway], uri: {prefix: /gw}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: everyone
    route: [{destination: {host: reviews, subset: v1}}]
"""


def _with(extra: str) -> Snapshot:
    """The test mesh (testdata/mesh.yaml), its VirtualService for a host replaced by `extra`'s."""
    parsed = [*parse_yaml((HERE / "testdata" / "mesh.yaml").read_text()), *parse_yaml(extra)]
    assert not [p.error for p in parsed if p.error]
    resources = [p.resource for p in parsed if p.resource]
    new = [p.resource for p in parse_yaml(extra) if p.resource]
    added = {(type(r), r.meta.namespace, r.meta.name) for r in new}
    kept = [
        r for r in resources[: -len(new)] if (type(r), r.meta.namespace, r.meta.name) not in added
    ]
    return build_snapshot([*kept, *new])


def _route_names(dump: dict[str, Any]) -> list[str]:
    return [
        route["name"]
        for config in dump["routes"]
        for vhost in config.get("virtualHosts", [])
        for route in vhost.get("routes", [])
    ]


def test_a_virtual_service_bound_only_to_a_gateway_leaves_sidecars_as_they_were() -> None:
    proxy = CASES["productpage"]
    before = config_dump(load_mesh("mesh.yaml"), proxy)
    after = config_dump(_with(GATEWAY_ONLY), proxy)
    assert after == before


def test_a_match_naming_only_other_gateways_is_left_out_of_sidecar_routes() -> None:
    names = _route_names(config_dump(_with(REVIEWS_SPLIT_BY_GATEWAY), CASES["productpage"]))
    assert "everyone" in names
    assert "from-the-gateway" not in names
