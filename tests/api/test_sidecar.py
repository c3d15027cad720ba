"""Sidecar: the supported subset decodes to the model, and every mistake is one error that names
its field path and says what is accepted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from istiolite.api import Sidecar, parse_yaml
from istiolite.api.decode import FrozenDict
from istiolite.api.networking import (
    IstioEgressListener,
    OutboundMode,
    OutboundTrafficPolicy,
    SidecarSpec,
    WorkloadSelector,
)
from istiolite.api.resources import ObjectMeta
from istiolite.cli import main

EXAMPLES = Path(__file__).parent / "testdata" / "sidecar.yaml"


def sc(spec: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata: {name: default, namespace: bookinfo}\nspec:\n" + textwrap.indent(spec, "  ")
    )


def test_the_examples_decode_to_the_model() -> None:
    parsed = parse_yaml(EXAMPLES.read_text(), source="sidecar.yaml")
    assert [p.error for p in parsed] == [None, None, None]
    assert [p.resource for p in parsed] == [
        Sidecar(
            meta=ObjectMeta(name="default", namespace="istio-system"),
            spec=SidecarSpec(
                egress=(IstioEgressListener(hosts=("./*",)),),
                outbound_traffic_policy=OutboundTrafficPolicy(mode=OutboundMode.ALLOW_ANY),
            ),
        ),
        Sidecar(
            meta=ObjectMeta(name="default", namespace="bookinfo"),
            spec=SidecarSpec(egress=(IstioEgressListener(hosts=("./*", "istio-system/*")),)),
        ),
        Sidecar(
            meta=ObjectMeta(name="productpage", namespace="bookinfo"),
            spec=SidecarSpec(
                workload_selector=WorkloadSelector(
                    labels=FrozenDict({"app": "productpage", "version": "v1"})
                ),
                egress=(
                    IstioEgressListener(
                        hosts=(
                            "./reviews.bookinfo.svc.cluster.local",
                            "*/details.bookinfo.svc.cluster.local",
                            "shared/*.example.com",
                            "~/*",
                        )
                    ),
                ),
                outbound_traffic_policy=OutboundTrafficPolicy(mode=OutboundMode.REGISTRY_ONLY),
            ),
        ),
    ]


def test_an_empty_sidecar_is_refused_as_in_istio() -> None:
    [parsed] = parse_yaml(sc("{}\n"))
    assert parsed.error is not None
    assert [str(e) for e in parsed.error.errors] == [
        "spec: must set egress or outboundTrafficPolicy (an empty Sidecar changes nothing)"
    ]
    assert OutboundTrafficPolicy().mode is OutboundMode.ALLOW_ANY


def test_analyze_accepts_the_examples() -> None:
    result = CliRunner().invoke(main, ["analyze", "-f", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "No validation issues found when analyzing 3 resource(s)." in result.output


ALL = "- hosts: ['./*']\n"

# (id, spec, expected field path, fragment of the message)
BROKEN = [
    (
        "host-without-slash",
        "egress:\n- hosts: [reviews.bookinfo.svc.cluster.local]\n",
        "spec.egress[0].hosts[0]",
        "must be namespace/dnsName such as './*', 'istio-system/*' or "
        "'*/reviews.default.svc.cluster.local', got 'reviews.bookinfo.svc.cluster.local'",
    ),
    (
        "namespace-not-a-name",
        "egress:\n- hosts: ['Book_Info/*']\n",
        "spec.egress[0].hosts[0]",
        "the namespace must be '.', '*' or a namespace name, optionally after '~' to exclude, "
        "got 'Book_Info'",
    ),
    (
        "namespace-empty",
        "egress:\n- hosts: ['/reviews.bookinfo.svc.cluster.local']\n",
        "spec.egress[0].hosts[0]",
        "the namespace must be '.', '*' or a namespace name, optionally after '~' to exclude, "
        "got ''",
    ),
    (
        "name-not-a-host",
        "egress:\n- hosts: ['./reviews!']\n",
        "spec.egress[0].hosts[0]",
        "the name must be '*', '*.suffix' or a full host name such as "
        "'reviews.default.svc.cluster.local', got 'reviews!' (in './reviews!')",
    ),
    (
        "name-wildcard-in-the-middle",
        "egress:\n- hosts: ['./reviews.*.svc.cluster.local']\n",
        "spec.egress[0].hosts[0]",
        "the name must be '*', '*.suffix' or a full host name",
    ),
    (
        "name-empty",
        "egress:\n- hosts: ['./']\n",
        "spec.egress[0].hosts[0]",
        "the name must be '*', '*.suffix' or a full host name such as "
        "'reviews.default.svc.cluster.local', got ''",
    ),
    (
        "second-host-broken",
        "egress:\n- hosts: ['./*', 'istio-system']\n",
        "spec.egress[0].hosts[1]",
        "must be namespace/dnsName",
    ),
    (
        "hosts-empty",
        "egress:\n- hosts: []\n",
        "spec.egress[0].hosts",
        "must list at least one namespace/dnsName",
    ),
    (
        "hosts-missing",
        "egress:\n- {}\n",
        "spec.egress[0].hosts",
        "required",
    ),
    (
        "hosts-not-a-list",
        "egress:\n- hosts: './*'\n",
        "spec.egress[0].hosts",
        "must be a list",
    ),
    (
        "ingress-rejected",
        "ingress:\n- port: {number: 9080, protocol: HTTP, name: http}\n"
        "  defaultEndpoint: 127.0.0.1:8080\n",
        "spec.ingress",
        "not supported: inbound listener settings",
    ),
    (
        "inbound-connection-pool-rejected",
        "inboundConnectionPool:\n  http: {http1MaxPendingRequests: 10}\n",
        "spec.inboundConnectionPool",
        "not supported: inbound connection pools",
    ),
    (
        "egress-port-rejected",
        "egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ['./*']\n",
        "spec.egress[0].port",
        "not supported: port-specific egress listeners",
    ),
    (
        "egress-bind-rejected",
        "egress:\n- bind: 127.0.0.1\n  hosts: ['./*']\n",
        "spec.egress[0].bind",
        "not supported: binding egress listeners to an address",
    ),
    (
        "egress-capture-mode-rejected",
        "egress:\n- captureMode: NONE\n  hosts: ['./*']\n",
        "spec.egress[0].captureMode",
        "not supported: per-listener capture modes",
    ),
    (
        # Both listeners are valid on their own: the rule is the Sidecar's, checked after both
        # decode cleanly.
        "two-egress-listeners",
        "egress:\n" + ALL + "- hosts: ['istio-system/*']\n",
        "spec.egress",
        "istiolite supports one egress listener (without a port)",
    ),
    (
        "mode-unknown",
        "egress:\n" + ALL + "outboundTrafficPolicy: {mode: DENY_ALL}\n",
        "spec.outboundTrafficPolicy.mode",
        "must be one of ALLOW_ANY, REGISTRY_ONLY; got string 'DENY_ALL'",
    ),
    (
        "mode-lower-case",
        "outboundTrafficPolicy: {mode: registry_only}\n",
        "spec.outboundTrafficPolicy.mode",
        "must be one of ALLOW_ANY, REGISTRY_ONLY",
    ),
    (
        "egress-proxy-rejected",
        "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"
        "  egressProxy: {host: egress.istio-system.svc.cluster.local}\n",
        "spec.outboundTrafficPolicy.egressProxy",
        "not supported: egress proxies",
    ),
    (
        "workload-selector-labels-not-a-map",
        "workloadSelector: {labels: [app]}\n",
        "spec.workloadSelector.labels",
        "must be a map, got a list",
    ),
    (
        "workload-selector-typo",
        "workloadSelector: {matchLabels: {app: reviews}}\n",
        "spec.workloadSelector.matchLabels",
        "unknown field; accepted: labels",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_a_broken_sidecar_is_one_error_naming_the_field(
    spec: str, path: str, fragment: str
) -> None:
    [parsed] = parse_yaml(sc(spec), source="sidecar.yaml")
    assert parsed.resource is None and parsed.error is not None
    [error] = parsed.error.errors
    assert str(error).startswith(f"{path}: ") and fragment in str(error), str(error)


def test_analyze_names_the_sidecar_and_the_field(tmp_path: Path) -> None:
    file = tmp_path / "sidecar.yaml"
    file.write_text(sc("egress:\n" + ALL + "- hosts: ['istio-system/*']\n"))
    result = CliRunner().invoke(main, ["analyze", "-f", str(file)])
    assert result.exit_code == 1, result.output
    assert "Sidecar bookinfo/default" in result.output
    assert " spec.egress: istiolite supports one egress listener" in result.output
