"""A real Envoy takes everything pilot-discovery sends, and follows edits without restarts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from istiolite.cli import main
from istiolite.testing import mesh
from istiolite.testing.mesh import Discovery, Envoy, acked_all, dynamic_names
from istiolite.testing.wait import eventually

pytestmark = pytest.mark.envoy


@pytest.fixture
def envoys(discovery: Discovery, work: Path) -> Iterator[list[Envoy]]:
    started = [
        Envoy(
            discovery.address,
            work,
            name="productpage-v1-a",
            ip="10.1.0.5",
            labels={"app": "productpage"},
        ),
        Envoy(
            discovery.address,
            work,
            name="reviews-v1-a",
            ip="10.1.0.11",
            labels={"app": "reviews", "version": "v1"},
        ),
        Envoy(
            discovery.address,
            work,
            name="ratings-vm",
            ip="10.2.0.5",
            labels={"app": "ratings", "version": "v1"},
        ),
        Envoy(
            discovery.address,
            work,
            name="client",
            namespace="db",
            ip="10.1.9.9",
            labels={"app": "client"},
        ),
    ]
    for e in started:
        e.start()
    yield started
    for e in started:
        e.stop()


def acked_everything(discovery: Discovery, count: int) -> bool:
    rows = discovery.syncz()["proxies"]
    return len(rows) == count and all(acked_all(r) for r in rows)


def test_envoys_ack_every_type_with_no_nack(discovery: Discovery, envoys: list[Envoy]) -> None:
    for e in envoys:
        e.wait_live()
    eventually(
        lambda: acked_everything(discovery, len(envoys)),
        what="every proxy to ACK CDS, EDS, LDS, RDS",
    )
    for e in envoys:
        rejected = {k: v for k, v in e.stats("update_rejected").items() if v}
        assert not rejected, (e.name, rejected)
    rejects = {
        k: v for k, v in discovery.metrics().items() if k.startswith("pilot_total_xds_rejects")
    }
    assert not any(rejects.values()), rejects


def test_config_dump_has_istio_names(discovery: Discovery, envoys: list[Envoy]) -> None:
    productpage = envoys[0]
    productpage.wait_live()
    eventually(
        lambda: "9080" in dynamic_names(productpage.config_dump())["routes"], what="RDS 9080"
    )
    names = dynamic_names(productpage.config_dump())
    assert {
        "PassthroughCluster",
        "BlackHoleCluster",
        "InboundPassthroughCluster",
        "outbound|9080||reviews.default.svc.cluster.local",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        "outbound|3306|replica|mysql.db.svc.cluster.local",
    } <= names["clusters"]
    assert {"virtualOutbound", "virtualInbound", "0.0.0.0_9080", "10.96.0.20_3306"} <= names[
        "listeners"
    ]
    assert {"9080", "9090"} <= names["routes"]
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in names["endpoints"]
    generated = discovery.get("/debug/config_dump?proxyID=productpage-v1-a.default").json()
    assert {c["name"] for c in generated["clusters"]} == names["clusters"]
    assert {r["name"] for r in generated["routes"]} == names["routes"]


def route_names(envoy: Envoy) -> list[str]:
    return mesh.route_names(envoy.config_dump(), "9080", "reviews.default.svc.cluster.local:9080")


def test_editing_a_virtual_service_file_changes_envoy_routes_live(
    discovery: Discovery, envoys: list[Envoy], config_dir: Path
) -> None:
    envoy = envoys[0]
    envoy.wait_live()
    eventually(lambda: "canary" in route_names(envoy), what="the initial routes")
    pid = envoy.proc.pid if envoy.proc else None
    (config_dir / "reviews-override.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: reviews, namespace: default}\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - name: all-v3\n"
        "    route: [{destination: {host: reviews, subset: v3}}]\n"
    )
    eventually(lambda: route_names(envoy) == ["all-v3"], what="Envoy to take the edited routes")
    assert envoy.proc is not None and envoy.proc.pid == pid and envoy.proc.poll() is None


def test_invalid_file_keeps_last_good_config_and_is_reported(
    discovery: Discovery, envoys: list[Envoy], config_dir: Path
) -> None:
    envoy = envoys[0]
    envoy.wait_live()
    eventually(lambda: "canary" in route_names(envoy), what="the initial routes")
    mesh = config_dir / "mesh.yaml"
    mesh.write_text(mesh.read_text().replace("weight: 75", "weight: -75"))
    eventually(
        lambda: bool(discovery.get("/debug/configz").json()["errors"]),
        what="the error to be reported",
    )
    errors = discovery.get("/debug/configz").json()["errors"][str(mesh)]
    expected = "spec.http[4].route[0].weight: must be 0..2147483647, got -75"
    assert any(expected in e for e in errors), errors
    time.sleep(0.5)
    assert "canary" in route_names(envoy)
    assert all(not t["nacked"] for r in discovery.syncz()["proxies"] for t in r["types"].values())


def test_rejected_config_keeps_envoy_on_the_previous_one_and_is_reported(
    discovery: Discovery, work: Path, config_dir: Path
) -> None:
    # This Envoy allows only tiny regexes, so it rejects a route discovery rightly considers
    # valid: the situation of a proxy whose limits differ from what discovery knows.
    strict = Envoy(
        discovery.address,
        work,
        name="productpage-strict",
        ip="10.1.0.6",
        labels={"app": "productpage"},
        runtime={"re2.max_program_size.error_level": 40},
    ).start()
    try:
        strict.wait_live()
        eventually(lambda: "canary" in route_names(strict), what="the initial routes")
        (config_dir / "reviews-override.yaml").write_text(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: reviews, namespace: default}\n"
            "spec:\n  hosts: [reviews]\n  http:\n  - name: regex\n"
            "    match: [{uri: {regex: "
            "'^/reviews/[0-9]+/(summary|details|ratings|votes)/[a-z]+/[0-9]+$'}}]\n"
            "    route: [{destination: {host: reviews, subset: v3}}]\n"
        )

        def nacked() -> dict[str, str]:
            [row] = discovery.syncz()["proxies"]
            return dict(row["types"]["RDS"])

        eventually(lambda: bool(nacked()["nacked"]), what="the NACK to be reported")
        rds = nacked()
        assert "max program size" in rds["error"], rds
        assert rds["acked"] != rds["nacked"]
        assert "canary" in route_names(strict), "Envoy must keep serving the last good routes"
        assert discovery.metrics()['pilot_total_xds_rejects{type="rds"}'] >= 1
        (config_dir / "reviews-override.yaml").unlink()
        eventually(
            lambda: not nacked()["error"] and nacked()["acked"] == nacked()["sent"], what="recovery"
        )
    finally:
        strict.stop()


def test_outbound_cluster_stats_are_dropped_unless_asked_for(
    discovery: Discovery, work: Path
) -> None:
    """Per-cluster stats are most of a sidecar's memory; the bootstrap drops them by default."""
    lean = Envoy(discovery.address, work, name="lean", labels={"app": "productpage"}).start()
    full = Envoy(discovery.address, work, name="full", cluster_stats=True).start()
    try:
        for e in (lean, full):
            e.wait_live()
            eventually(partial(_has_outbound_clusters, e), what="outbound clusters")
        lean_stats, full_stats = lean.stats("^cluster\\."), full.stats("^cluster\\.")
        assert not [n for n in lean_stats if n.startswith("cluster.outbound|")]
        assert [n for n in full_stats if n.startswith("cluster.outbound|")]
        # What readiness and debugging read is kept: the control-plane connection's stats.
        assert lean_stats["cluster.xds-grpc.upstream_cx_active"] == 1
    finally:
        lean.stop()
        full.stop()


def _has_outbound_clusters(envoy: Envoy) -> bool:
    return any(n.startswith("outbound|") for n in dynamic_names(envoy.config_dump())["clusters"])


def test_proxy_config_shows_what_a_connected_proxy_is_sent(
    discovery: Discovery, envoys: list[Envoy]
) -> None:
    eventually(lambda: acked_everything(discovery, len(envoys)), what="every proxy to ACK")
    address = f"127.0.0.1:{discovery.http_port}"
    runner = CliRunner()

    def proxy_config(*args: str) -> str:
        result = runner.invoke(main, ["proxy-config", *args, f"--discovery-address={address}"])
        assert result.exit_code == 0, result.output
        return result.output

    routes = proxy_config("routes", "productpage-v1-a.default")
    assert "reviews.default.svc.cluster.local:9080" in routes
    clusters = proxy_config("clusters", "productpage-v1-a.default")
    table = [line.split()[:4] for line in clusters.splitlines()]
    for name in dynamic_names(envoys[0].config_dump())["clusters"]:
        if name.count("|") == 3:  # Istio's direction|port|subset|fqdn
            direction, port, subset, fqdn = name.split("|")
            assert [fqdn or "-", port, subset or "-", direction] in table, name
        else:  # PassthroughCluster and the like
            assert [name, "-", "-", "-"] in table, name
    endpoints = json.loads(proxy_config("endpoints", "productpage-v1-a.default", "-o", "json"))
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in {
        e["clusterName"] for e in endpoints
    }
    missing = runner.invoke(
        main, ["proxy-config", "routes", "nobody.default", f"--discovery-address={address}"]
    )
    assert missing.exit_code == 1 and "no connected proxy 'nobody.default'" in missing.output
