"""Bootstrap rendering: golden files, identity from the environment, and Envoy's own verdict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from istiolite.agent.bootstrap import (
    identity_from_env,
    parse_labels_file,
    render_bootstrap,
    render_json,
)
from istiolite.agent.settings import ProxySettings
from tests.agent.golden import assert_golden

POD_ENV = {
    "POD_NAME": "reviews-v2-7d9f",
    "POD_NAMESPACE": "bookinfo",
    "INSTANCE_IP": "10.244.1.17",
    "SERVICE_ACCOUNT": "bookinfo-reviews",
    "ISTIO_META_CLUSTER_ID": "east",
    "ISTIO_META_MESH_ID": "mesh1",
    "ISTIO_METAJSON_LABELS": '{"app": "reviews", "version": "v2"}',
    "HOME": "/root",
}


def test_sidecar_bootstrap_matches_golden() -> None:
    bootstrap = render_bootstrap(ProxySettings(), identity_from_env(POD_ENV))
    assert_golden("bootstrap_sidecar.json", render_json(bootstrap))


def test_bootstrap_with_ip_discovery_and_custom_ports_matches_golden() -> None:
    settings = ProxySettings(
        discovery_address="127.0.0.1:16010",
        admin_port=16000,
        status_port=16020,
        prometheus_port=16090,
        health_port=16021,
    )
    bootstrap = render_bootstrap(
        settings, identity_from_env({"POD_NAME": "a", "POD_NAMESPACE": "b"})
    )
    assert_golden("bootstrap_loopback.json", render_json(bootstrap))


def test_node_id_and_metadata_follow_istio_names() -> None:
    node = render_bootstrap(ProxySettings(), identity_from_env(POD_ENV))["node"]
    assert node["id"] == "sidecar~10.244.1.17~reviews-v2-7d9f.bookinfo~bookinfo.svc.cluster.local"
    assert node["cluster"] == "reviews.bookinfo"
    metadata = node["metadata"]
    assert metadata["NAME"] == "reviews-v2-7d9f"
    assert metadata["NAMESPACE"] == "bookinfo"
    assert metadata["LABELS"] == {"app": "reviews", "version": "v2"}
    assert metadata["INSTANCE_IPS"] == "10.244.1.17"
    assert metadata["SERVICE_ACCOUNT"] == "bookinfo-reviews"
    assert metadata["CLUSTER_ID"] == "east"
    assert metadata["MESH_ID"] == "mesh1"


def test_dual_stack_pod_lists_every_ip_and_names_itself_by_the_first() -> None:
    identity = identity_from_env({**POD_ENV, "INSTANCE_IPS": "10.244.1.17,fd00::17"})
    assert identity.ips == ("10.244.1.17", "fd00::17")
    assert identity.node_id("cluster.local").startswith("sidecar~10.244.1.17~")


def test_labels_file_wins_over_environment_because_it_follows_label_changes() -> None:
    text = 'app="reviews"\nversion="v3"\nquoted="a\\"b"\n'
    identity = identity_from_env(POD_ENV, text)
    assert identity.labels == {"app": "reviews", "version": "v3", "quoted": 'a"b'}


def test_labels_file_parser_skips_blank_and_malformed_lines() -> None:
    assert parse_labels_file('\napp="x"\nno-equals-sign\n') == {"app": "x"}


def test_pod_without_app_label_is_in_the_istio_proxy_cluster() -> None:
    identity = identity_from_env({"POD_NAME": "p", "POD_NAMESPACE": "n"})
    assert identity.service_cluster() == "istio-proxy"


def test_hostname_discovery_address_is_resolved_by_dns() -> None:
    clusters = render_bootstrap(ProxySettings(), identity_from_env({}))["static_resources"][
        "clusters"
    ]
    xds = next(c for c in clusters if c["name"] == "xds-grpc")
    assert xds["type"] == "STRICT_DNS"
    address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "istiod.istio-system.svc", "port_value": 15010}


@pytest.mark.envoy
@pytest.mark.parametrize(
    "discovery", ["istiod.istio-system.svc:15010", "127.0.0.1:15010", "[::1]:15010"]
)
def test_envoy_accepts_the_rendered_bootstrap(tmp_path: Path, discovery: str) -> None:
    settings = ProxySettings(discovery_address=discovery)
    path = tmp_path / "envoy.json"
    path.write_text(render_json(render_bootstrap(settings, identity_from_env(POD_ENV))))
    result = subprocess.run(
        [settings.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(path.read_text())["admin"]["address"]["socket_address"]["port_value"] == 15000
