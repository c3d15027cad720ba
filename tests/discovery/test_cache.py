"""The shared-bytes cache serves exactly what translation builds, also after incremental edits.

Every shortcut the cache takes (pieces shared across namespaces, assemblies patched where hosts
changed, types skipped when their key is unchanged) is checked against fresh translation
after each kind of edit, and against a cache that starts cold: the same bytes and versions.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2

from istiolite.discovery.files import FileRegistry
from istiolite.discovery.model import Proxy, Snapshot, build_snapshot
from istiolite.discovery.translate import (
    build_clusters,
    build_endpoints,
    build_listeners,
    build_routes,
    clusters,
    endpoints,
    routes,
)
from istiolite.discovery.translate.routes import http_ports
from istiolite.discovery.xds.cache import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    ROUTE,
    Generation,
    PartCache,
    Piece,
    Response,
)
from tests.discovery.test_translate_golden import CASES, HERE
from tests.discovery.test_translate_golden import proxy as make_proxy

# The golden cases, and proxies like productpage's in other namespaces: the same caller labels,
# but other short names and sourceNamespace matches, so none may share productpage's routes.
PROXIES = {
    **CASES,
    "productpage-in-db": make_proxy("productpage-b", "db", "10.1.9.10", app="productpage"),
    "productpage-in-web": make_proxy("productpage-c", "web", "10.1.9.11", app="productpage"),
}
MESSAGES = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}
# The test mesh, plus routes that depend on the caller's namespace, and on the ports of the
# service they send to (see "the service a route sends to changes its port").
BASE = (HERE / "testdata" / "mesh.yaml").read_text() + (
    """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  http:
  - match: [{uri: {prefix: /admin}, sourceNamespace: db}]
    route: [{destination: {host: productpage, subset: admin}}]
  - match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: productpage}}]
"""
)


def replace(*pairs: tuple[str, str]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        for old, new in pairs:
            assert old in text, old
            text = text.replace(old, new)
        return text

    return edit


def append(doc: str) -> Callable[[str], str]:
    return lambda text: text + "---\n" + doc


def remove(header: str) -> Callable[[str], str]:
    """Drop the one document that contains `header`."""

    def edit(text: str) -> str:
        docs = text.split("---\n")
        kept = [d for d in docs if header not in d]
        assert len(kept) == len(docs) - 1, header
        return "---\n".join(kept)

    return edit


DETAILS = """apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  clusterIP: 10.96.0.13
  selector: {app: details}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-vm, namespace: default}
spec: {address: 10.2.0.7, labels: {app: details}}
"""
UNREADY = "- addresses: [10.1.0.14]\n  conditions: {ready: "
# Each kind of change the cache must see through, as an edit of the mesh's YAML.
EDITS: dict[str, Callable[[str], str]] = {
    "a VirtualService's weights": replace(
        ("weight: 75", "weight: 60"), ("weight: 25", "weight: 40")
    ),
    "a route's destination host": replace(
        ("{host: ratings, subset: v1, port: {number: 9080}}", "{host: reviews, subset: v1}")
    ),
    "a VirtualService removed": remove("kind: VirtualService\nmetadata: {name: ratings"),
    "a DestinationRule's policy and subsets": replace(
        ("loadBalancer: {simple: RANDOM}", "loadBalancer: {simple: LEAST_REQUEST}"),
        ("- {name: v3, labels: {version: v3}}", "- {name: v3, labels: {version: v2}}"),
    ),
    "a routed-to host's DestinationRule": replace(
        (
            "loadBalancer: {simple: ROUND_ROBIN}",
            "loadBalancer: {consistentHash: {httpHeaderName: x-id}}",
        )
    ),
    "a DestinationRule's exportTo": replace(
        (
            "  host: ratings\n  trafficPolicy:",
            "  host: ratings\n  exportTo: ['.']\n  trafficPolicy:",
        )
    ),
    "an EndpointSlice's endpoints": replace((UNREADY + "false}", UNREADY + "true}")),
    "a WorkloadEntry's address and weight": replace(
        ("address: 10.2.0.5", "address: 10.2.0.6"), ("weight: 3", "weight: 5")
    ),
    "a Service added": append(DETAILS),
    "a Service removed": remove("kind: Service\nmetadata: {name: productpage"),
    "the service a route sends to changes its port": replace(
        ("port: 9080, targetPort: http-web", "port: 9082, targetPort: http-web")
    ),
    "a Service's cluster IP becomes shared": replace(
        ("clusterIP: 10.96.0.10", "clusterIP: 10.96.0.12")
    ),
    "a new sourceLabels key": replace(
        ("{sourceLabels: {app: productpage}}", "{sourceLabels: {app: productpage, version: v1}}")
    ),
    "a TCP route's weights": replace(
        ("weight: 90}", "weight: 80}"), ("weight: 10}", "weight: 20}")
    ),
}


class Mesh:
    """A config directory read by the file registry, as pilot-discovery reads it."""

    def __init__(self, directory: Path, text: str = BASE) -> None:
        self.path = directory / "mesh.yaml"
        self.path.write_text(text)
        self.registry = FileRegistry(directory, lambda at: None)
        self.registry.load_all()

    def write(self, text: str) -> None:
        self.path.write_text(text)
        self.registry.apply([self.path])
        assert not self.registry.errors(), self.registry.errors()

    def snapshot(self, previous: Snapshot | None = None) -> Snapshot:
        return build_snapshot(self.registry.resources(), previous=previous)


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    return Mesh(tmp_path)


def names_for(snapshot: Snapshot, proxy: Proxy, type_url: str) -> frozenset[str]:
    """The names an Envoy subscribes to: its EDS clusters, and a route config per HTTP port."""
    if type_url == ENDPOINT:
        return frozenset(
            c.name for c in build_clusters(snapshot, proxy) if c.HasField("eds_cluster_config")
        )
    if type_url == ROUTE:
        return frozenset(str(p) for p in http_ports(snapshot.services.values()))
    return frozenset()


def served(generation: Generation, type_url: str, proxy: Proxy) -> tuple[str, list[Any]]:
    """The version and resources a proxy receives, parsed: fields may be ordered differently."""
    names = names_for(generation.snapshot, proxy, type_url)
    version, body = generation.respond(type_url, proxy, names)
    assert body is not None
    response = discovery_pb2.DiscoveryResponse.FromString(body)
    assert response.version_info == version and response.type_url == type_url
    return version, [MESSAGES[type_url].FromString(r.value) for r in response.resources]


def translated(snapshot: Snapshot, type_url: str, proxy: Proxy) -> list[Any]:
    names = sorted(names_for(snapshot, proxy, type_url))
    builds: dict[str, Callable[[], list[Any]]] = {
        CLUSTER: lambda: build_clusters(snapshot, proxy),
        LISTENER: lambda: build_listeners(snapshot, proxy),
        ENDPOINT: lambda: build_endpoints(snapshot, proxy, names),
        ROUTE: lambda: build_routes(snapshot, proxy, names),
    }
    return builds[type_url]()


def every_response() -> Iterator[tuple[str, Proxy, str]]:
    for case, p in sorted(PROXIES.items()):
        for type_url in PUSH_ORDER:
            yield case, p, type_url


def assert_fresh(generation: Generation, types: tuple[str, ...] = PUSH_ORDER) -> None:
    """What the generation serves is what translation builds, and what a cold cache serves."""
    cold = Generation(generation.snapshot, 1)
    for case, proxy, type_url in every_response():
        if type_url not in types:
            continue
        version, resources = served(generation, type_url, proxy)
        assert resources == translated(generation.snapshot, type_url, proxy), (case, type_url)
        assert version == served(cold, type_url, proxy)[0], (case, type_url)


def serve(generation: Generation, types: tuple[str, ...] = PUSH_ORDER) -> None:
    """Like the writers: every type's key is looked at, responses built for `types` only."""
    for _, p, type_url in every_response():
        names = names_for(generation.snapshot, p, type_url)
        generation.key(type_url, p, names)
        if type_url in types:
            generation.respond(type_url, p, names)


@pytest.mark.parametrize("case", sorted(PROXIES))
@pytest.mark.parametrize("type_url", PUSH_ORDER)
def test_cached_response_equals_translation(mesh: Mesh, case: str, type_url: str) -> None:
    snapshot, proxy = mesh.snapshot(), PROXIES[case]
    _, resources = served(Generation(snapshot, 1), type_url, proxy)
    assert resources == translated(snapshot, type_url, proxy)


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_after_an_edit_every_response_is_fresh(mesh: Mesh, edit: str) -> None:
    parts = PartCache()
    first = Generation(mesh.snapshot(), 1, parts)
    serve(first)
    mesh.write(EDITS[edit](BASE))
    second = Generation(mesh.snapshot(previous=first.snapshot), 2, parts, first)
    assert second.snapshot != first.snapshot
    assert_fresh(second)


def test_edits_in_a_row_are_fresh_when_types_were_skipped_in_between(mesh: Mesh) -> None:
    """Assemblies last built generations ago are patched with every change since."""
    parts = PartCache()
    generation = Generation(mesh.snapshot(), 1, parts)
    serve(generation)
    text = BASE
    steps = [
        ("a VirtualService's weights", (ROUTE,)),
        ("an EndpointSlice's endpoints", (ENDPOINT,)),
        ("a DestinationRule's policy and subsets", ()),
        ("a Service added", (CLUSTER, LISTENER)),
        ("a routed-to host's DestinationRule", ()),
        ("a Service removed", PUSH_ORDER),
    ]
    for number, (edit, types) in enumerate(steps, start=2):
        text = EDITS[edit](text)
        mesh.write(text)
        snapshot = mesh.snapshot(previous=generation.snapshot)
        generation = Generation(snapshot, number, parts, generation)
        parts.sweep(number)
        serve(generation, types)
    assert_fresh(generation)


def keys(generation: Generation) -> dict[tuple[str, str], object]:
    return {
        (case, t): generation.key(t, proxy, names_for(generation.snapshot, proxy, t))
        for case, proxy, t in every_response()
    }


def versions(generation: Generation) -> dict[tuple[str, str], str]:
    return {(case, t): served(generation, t, proxy)[0] for case, proxy, t in every_response()}


def edited(mesh: Mesh, edit: str) -> tuple[Generation, Generation]:
    parts = PartCache()
    first = Generation(mesh.snapshot(), 1, parts)
    serve(first)
    mesh.write(EDITS[edit](BASE))
    return first, Generation(mesh.snapshot(previous=first.snapshot), 2, parts, first)


def changed(before: dict[tuple[str, str], Any], after: dict[tuple[str, str], Any]) -> set[str]:
    return {t for (_, t), value in after.items() if value != before[_, t]}


def test_an_http_route_edit_changes_only_the_route_keys(mesh: Mesh) -> None:
    """Writers compare keys to skip a type without building: only RDS is looked at."""
    first, second = edited(mesh, "a VirtualService's weights")
    assert changed(keys(first), keys(second)) == {ROUTE}
    assert changed(versions(first), versions(second)) == {ROUTE}


def test_a_tcp_route_edit_changes_listeners(mesh: Mesh) -> None:
    first, second = edited(mesh, "a TCP route's weights")
    assert LISTENER in changed(keys(first), keys(second))
    assert changed(versions(first), versions(second)) == {LISTENER}


def test_an_endpoint_change_sends_only_endpoints(mesh: Mesh) -> None:
    first, second = edited(mesh, "an EndpointSlice's endpoints")
    assert changed(versions(first), versions(second)) == {ENDPOINT}


def test_a_route_edit_translates_only_the_edited_host(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    virtual_host = routes.virtual_host

    def counting(snapshot: Snapshot, proxy: Proxy, service: Any, port: int) -> Any:
        built.append(service.name)
        return virtual_host(snapshot, proxy, service, port)

    _, second = edited(mesh, "a VirtualService's weights")
    monkeypatch.setattr(routes, "virtual_host", counting)
    serve(second, (ROUTE,))
    # The productpage route names reviews' clusters, not its weights: it is not rebuilt. The
    # reviews routes match on caller labels, so there is one virtual host per caller label,
    # for callers in reviews' namespace (short names) and for those elsewhere.
    assert set(built) == {"reviews"}
    groups = {(p.namespace == "default", p.labels.get("app")) for p in PROXIES.values()}
    assert len(built) == len(groups) < len(PROXIES)


def test_a_new_service_translates_only_its_own_endpoints(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    assignment = endpoints.cluster_load_assignment

    def counting(snapshot: Snapshot, namespace: str, name: str) -> Any:
        built.append(name)
        return assignment(snapshot, namespace, name)

    parts = PartCache()
    generation = Generation(mesh.snapshot(), 1, parts)
    serve(generation)
    text = BASE
    # Route edits first, so the endpoints' pieces are no longer cached: only the namespace's
    # assembly still holds them when the new service changes every proxy's subscription.
    for number, edit in enumerate(["a VirtualService's weights", "a TCP route's weights"], 2):
        text = EDITS[edit](text)
        mesh.write(text)
        generation = Generation(mesh.snapshot(generation.snapshot), number, parts, generation)
        parts.sweep(number)
        serve(generation, (ROUTE, LISTENER))
    mesh.write(EDITS["a Service added"](text))
    generation = Generation(mesh.snapshot(generation.snapshot), 4, parts, generation)
    parts.sweep(4)
    monkeypatch.setattr(endpoints, "cluster_load_assignment", counting)
    serve(generation, (ENDPOINT,))
    assert set(built) == {"outbound|9080||details.default.svc.cluster.local"}


def test_proxies_of_every_namespace_share_the_clusters_of_a_service(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    service_clusters = clusters.service_clusters

    def counting(snapshot: Snapshot, namespace: str, service: Any) -> Any:
        built.append(service.hostname)
        return service_clusters(snapshot, namespace, service)

    monkeypatch.setattr(clusters, "service_clusters", counting)
    generation = Generation(mesh.snapshot(), 1)
    for p in PROXIES.values():
        generation.respond(CLUSTER, p, frozenset())
    assert {p.namespace for p in PROXIES.values()} == {"default", "db", "web"}
    assert len(built) == len(set(built))  # the db proxy sees the same rules: nothing rebuilt


def test_proxies_alike_share_one_response_and_body(mesh: Mesh) -> None:
    generation = Generation(mesh.snapshot(), 1)
    reviews, productpage = CASES["reviews-v1"], CASES["productpage"]
    names = names_for(generation.snapshot, reviews, ENDPOINT)
    first = generation.response(ENDPOINT, reviews, names)
    assert generation.response(ENDPOINT, productpage, names) is first
    assert first.body() is first.body()


def test_unchanged_version_returns_no_body(mesh: Mesh) -> None:
    generation = Generation(mesh.snapshot(), 1)
    version, body = generation.respond(CLUSTER, CASES["productpage"], frozenset())
    assert body is not None
    assert generation.respond(CLUSTER, CASES["productpage"], frozenset(), version) == (
        version,
        None,
    )


# --- Sidecars -----------------------------------------------------------------------------------

SIDECARS = (HERE / "testdata" / "sidecars.yaml").read_text()
# Edits of the mesh under Sidecars, each after the one before (see testdata/sidecars.yaml).
SIDECAR_EDITS: list[tuple[str, Callable[[str], str]]] = [
    ("Sidecars added", append(SIDECARS)),
    (
        "a Sidecar's hosts",
        replace(('["./ratings.', '["./reviews.default.svc.cluster.local", "./ratings.')),
    ),
    ("a Sidecar's outbound mode", replace(("{mode: REGISTRY_ONLY}", "{mode: ALLOW_ANY}"))),
    ("a VirtualService's weights", EDITS["a VirtualService's weights"]),
    ("a Sidecar's selector", replace(("{labels: {app: reviews}}", "{labels: {app: ratings}}"))),
    ("the root namespace's Sidecar removed", remove("name: default, namespace: istio-system")),
]


def test_sidecar_edits_in_a_row_serve_what_translation_builds(mesh: Mesh) -> None:
    parts, text = PartCache(), BASE
    generation = Generation(mesh.snapshot(), 1, parts)
    serve(generation)
    for number, (edit, change) in enumerate(SIDECAR_EDITS, start=2):
        text = change(text)
        mesh.write(text)
        generation = Generation(
            mesh.snapshot(previous=generation.snapshot), number, parts, generation
        )
        parts.sweep(number)
        try:
            assert_fresh(generation)
        except AssertionError as e:
            e.add_note(f"after: {edit}")
            raise
        serve(generation)


def test_a_route_edit_outside_a_proxys_sidecar_leaves_its_config_alone(tmp_path: Path) -> None:
    """reviews' Sidecar shows it ratings only: an edit of reviews' own routes is not its concern."""
    text = append(SIDECARS)(BASE)
    mesh = Mesh(tmp_path, text)
    parts = PartCache()
    first = Generation(mesh.snapshot(), 1, parts)
    before = versions(first)
    mesh.write(EDITS["a VirtualService's weights"](text))
    second = Generation(mesh.snapshot(previous=first.snapshot), 2, parts, first)
    after = versions(second)
    assert after["reviews-v1", ROUTE] == before["reviews-v1", ROUTE]
    assert after["productpage", ROUTE] != before["productpage", ROUTE]  # it calls reviews


def test_a_sidecar_scopes_its_proxies_and_no_others(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, append(SIDECARS)(BASE))
    generation = Generation(mesh.snapshot(), 1)

    def hosts(case: str) -> set[str]:
        _, resources = served(generation, CLUSTER, PROXIES[case])
        return {c.name.rsplit("|", 1)[-1] for c in resources if c.name.startswith("outbound|")}

    assert hosts("reviews-v1") == {"ratings.default.svc.cluster.local"}
    assert hosts("mysql-client-in-db") == {"mysql.db.svc.cluster.local"}  # the root default
    assert "reviews.default.svc.cluster.local" in hosts("productpage")  # ./* of default
    assert "mysql.db.svc.cluster.local" not in hosts("productpage")


# --- partial EDS responses ----------------------------------------------------------------------


def _eds(version: str, named: dict[str, Piece]) -> Response:
    items = tuple(sorted(named.items()))
    return Response(ENDPOINT, version, tuple(p.data for _, p in items), "n", items)


def test_changes_since_names_only_the_pieces_that_differ() -> None:
    pieces = {f"c{i}": Piece.of(f"assignment {i}".encode()) for i in range(6)}
    held = _eds("1", pieces)
    moved = Piece.of(b"assignment 2, moved")
    now = _eds("2", {**pieces, "c2": moved})
    part = now.changes_since(held)
    assert part is not None and part.chunks == (moved.data,) and part.version == "2"
    assert now.changes_since(held) is part  # worked out once per held response
    everything = _eds("3", {name: Piece.of(b"new " + p.data) for name, p in pieces.items()})
    assert everything.changes_since(held) is None  # most changed: send it whole


def test_a_partial_response_does_not_keep_the_ones_before_it_alive() -> None:
    pieces = {f"c{i}": Piece.of(f"assignment {i}".encode()) for i in range(6)}
    first = _eds("1", pieces)
    gone = weakref.ref(first)
    second = _eds("2", {**pieces, "c0": Piece.of(b"x")})
    assert second.changes_since(first) is not None
    third = _eds("3", {**pieces, "c1": Piece.of(b"y")})
    assert third.changes_since(second) is not None
    del first, second
    gc.collect()
    assert gone() is None
