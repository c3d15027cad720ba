"""The shared-bytes cache serves exactly what translation builds, also after incremental edits."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from istiolite.discovery.model import Proxy, Snapshot, build_snapshot
from istiolite.discovery.translate import (
    build_clusters,
    build_endpoints,
    build_listeners,
    build_routes,
)
from istiolite.discovery.translate.routes import http_ports
from istiolite.discovery.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Generation, PartCache

from istiolite.api import parse_yaml
from tests.discovery.test_translate_golden import CASES, HERE


def resources() -> list:  # type: ignore[type-arg]
    parsed = parse_yaml((HERE / "testdata" / "mesh.yaml").read_text())
    return [p.resource for p in parsed if p.resource]


MESSAGES = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}


def served(
    generation: Generation, type_url: str, proxy: Proxy, names: frozenset[str]
) -> list[object]:
    """What a proxy receives, parsed: bytes assembled from parts may order fields differently."""
    version, body = generation.respond(type_url, proxy, names)
    assert body is not None
    response = discovery_pb2.DiscoveryResponse.FromString(body)
    assert response.version_info == version and response.type_url == type_url
    return [MESSAGES[type_url].FromString(r.value) for r in response.resources]


def expected(
    snapshot: Snapshot, type_url: str, proxy: Proxy, names: frozenset[str]
) -> list[object]:
    build = {
        CLUSTER: lambda: build_clusters(snapshot, proxy),
        LISTENER: lambda: build_listeners(snapshot, proxy),
        ENDPOINT: lambda: build_endpoints(snapshot, proxy, sorted(names)),
        ROUTE: lambda: build_routes(snapshot, proxy, sorted(names)),
    }[type_url]
    return list(build())


def names_for(snapshot: Snapshot, proxy: Proxy, type_url: str) -> frozenset[str]:
    if type_url == ENDPOINT:
        return frozenset(
            c.name for c in build_clusters(snapshot, proxy) if c.HasField("eds_cluster_config")
        )
    if type_url == ROUTE:
        return frozenset(str(p) for p in http_ports(snapshot))
    return frozenset()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("type_url", [CLUSTER, ENDPOINT, LISTENER, ROUTE])
def test_cached_response_equals_translation(case: str, type_url: str) -> None:
    snapshot = build_snapshot(resources())
    proxy = CASES[case]
    names = names_for(snapshot, proxy, type_url)
    assert served(Generation(snapshot, 1), type_url, proxy, names) == expected(
        snapshot, type_url, proxy, names
    )


def test_after_an_edit_only_the_changed_host_is_rebuilt_and_the_result_is_fresh() -> None:
    parts = PartCache()
    before = resources()
    first = Generation(build_snapshot(before), 1, parts)
    proxy = CASES["productpage"]
    names = names_for(first.snapshot, proxy, ROUTE)
    old_version, _ = first.respond(ROUTE, proxy, names)
    edited_text = (
        (HERE / "testdata" / "mesh.yaml")
        .read_text()
        .replace("weight: 75", "weight: 60")
        .replace("weight: 25", "weight: 40")
    )
    edited = {(r.KIND, r.meta.key): r for p in parse_yaml(edited_text) if (r := p.resource)}
    after = [
        edited[r.KIND, r.meta.key] if r.KIND == "VirtualService" and r.meta.name == "reviews" else r
        for r in before
    ]
    snapshot = build_snapshot(after, previous=first.snapshot)
    second = Generation(snapshot, 2, parts, first)
    assert second.changed == {"reviews.default.svc.cluster.local"}
    built = parts.built
    new_version, _ = second.respond(ROUTE, proxy, names)
    assert new_version != old_version
    assert served(second, ROUTE, proxy, names) == expected(snapshot, ROUTE, proxy, names)
    assert parts.built - built == 2  # the reviews virtual host and the assembled route config
    assert second.respond(CLUSTER, proxy, frozenset()) == first.respond(CLUSTER, proxy, frozenset())


def test_unchanged_version_returns_no_body() -> None:
    generation = Generation(build_snapshot(resources()), 1)
    version, body = generation.respond(CLUSTER, CASES["productpage"], frozenset())
    assert body is not None
    assert generation.respond(CLUSTER, CASES["productpage"], frozenset(), version) == (
        version,
        None,
    )
