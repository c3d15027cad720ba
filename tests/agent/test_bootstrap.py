"""Bootstrap rendering: golden files, identity from the environment, and Envoy's own verdict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from istiolite.agent.bootstrap import (
    identity_from_env,
    parse_labels_file,
    render_bootstrap,
    render_json,
)
from istiolite.agent.settings import ProxySettings, SettingsError
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
    identity = identity_from_env(POD_ENV).with_labels(parse_labels_file(text))
    assert identity.labels == {"app": "reviews", "version": "v3", "quoted": 'a"b'}


def test_labels_file_parser_skips_blank_lines() -> None:
    assert parse_labels_file('\napp="x"\n\n') == {"app": "x"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('app="x"\nno-equals-sign\n', 2),
        ("app=x\n", 1),  # the downward API always quotes
        ('app="x\n', 1),
        ('="x"\n', 1),
        ("app: x\nversion: v1\n", 1),  # YAML, not the downward API's format
        ("app=1\n", 1),
    ],
)
def test_a_file_that_is_not_a_labels_file_is_refused_naming_its_line(text: str, line: int) -> None:
    with pytest.raises(ValueError, match=f'line {line}: expected key="value"'):
        parse_labels_file(text)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("INSTANCE_IP", "notanip", "expected an IP address"),
        ("INSTANCE_IP", "", "expected an IP address"),
        ("INSTANCE_IP", "[fd00::5]", "expected an IP address"),
        ("INSTANCE_IP", "fe80::1%eth0", "expected an IP address"),
        ("INSTANCE_IP", "10.1.0.5/32", "expected an IP address"),
        ("INSTANCE_IP", "010.1.0.5", "expected an IP address"),
        ("INSTANCE_IP", "10.1.0.5,10.1.0.6", "expected an IP address"),
        ("INSTANCE_IP", "256.1.0.5", "expected an IP address"),
        ("INSTANCE_IPS", "10.1.0.5,", "expected comma-separated IP addresses"),
        ("INSTANCE_IPS", "10.1.0.5,fd00::zz", "expected comma-separated IP addresses"),
        ("POD_NAME", "", "expected a Kubernetes name"),
        ("POD_NAME", "Web_1", "expected a Kubernetes name"),
        ("POD_NAME", "web~1", "expected a Kubernetes name"),
        ("POD_NAMESPACE", "shop.prod", "expected a DNS-1123 label"),
        ("POD_NAMESPACE", "-shop", "expected a DNS-1123 label"),
        ("SERVICE_ACCOUNT", "Web", "expected a Kubernetes name"),
        ("ISTIO_METAJSON_LABELS", "{bad", "expected a JSON object; not JSON"),
        ("ISTIO_METAJSON_LABELS", "[1,2]", "expected a JSON object, not list"),
        ("ISTIO_METAJSON_LABELS", '"app"', "expected a JSON object, not str"),
        ("ISTIO_METAJSON_LABELS", '{"app": 1}', "expected a JSON object of strings"),
        ("ISTIO_METAJSON_LABELS", '{"app": {"x": "y"}}', "expected a JSON object of strings"),
        ("ISTIO_METAJSON_LABELS", "", "expected a JSON object; not JSON"),
        ("ISTIO_METAJSON_ANNOTATIONS", '{"a": null}', "expected a JSON object of strings"),
        ("ISTIO_METAJSON_PLATFORM", "[]", "expected a JSON object, not list"),
        ("ISTIO_META_LABELS", "app=web", "set ISTIO_METAJSON_LABELS"),
        ("ISTIO_META_CLUSTER_ID", "", "expected the name of the pod's cluster"),
        ("ISTIO_META_", "x", "expected a metadata name after ISTIO_META_"),
        ("ISTIO_METAJSON_", "{}", "expected a metadata name after ISTIO_METAJSON_"),
    ],
)
def test_a_bad_identity_variable_is_refused_in_one_line_naming_it(
    name: str, value: str, accepted: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        identity_from_env({**POD_ENV, name: value})
    [line] = raised.value.problems
    assert line.startswith(f"invalid {name}={value!r}: expected"), line
    assert accepted in line


def test_every_bad_identity_variable_is_reported_at_once() -> None:
    env = {"INSTANCE_IP": "x", "POD_NAMESPACE": "A", "ISTIO_METAJSON_LABELS": "[]"}
    with pytest.raises(SettingsError) as raised:
        identity_from_env(env)
    assert len(raised.value.problems) == 3


def test_addresses_are_read_in_their_canonical_form() -> None:
    identity = identity_from_env({"INSTANCE_IPS": "10.1.0.5, fd00:0:0::5"})
    assert identity.ips == ("10.1.0.5", "fd00::5")


def test_json_metadata_other_than_labels_is_kept_as_an_object() -> None:
    identity = identity_from_env({**POD_ENV, "ISTIO_METAJSON_ANNOTATIONS": '{"a": "b"}'})
    assert identity.extra_metadata["ANNOTATIONS"] == {"a": "b"}


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


IDENTITY_VARIABLES = [
    "POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "INSTANCE_IPS", "SERVICE_ACCOUNT",
    "ISTIO_META_CLUSTER_ID", "ISTIO_META_LABELS", "ISTIO_METAJSON_LABELS",
    "ISTIO_METAJSON_ANNOTATIONS", "ISTIO_METAJSON_EXTRA",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(IDENTITY_VARIABLES), text=st.text(max_size=40))
def test_any_identity_text_is_a_value_or_a_line_never_a_traceback(name: str, text: str) -> None:
    try:
        identity = identity_from_env({**POD_ENV, name: text})
    except SettingsError as error:
        [line] = error.problems
        assert line.startswith(f"invalid {name}=")
    else:
        render_json(render_bootstrap(ProxySettings(), identity))
