"""Kinds istiolite would silently ignore are errors that name the kind and what is supported.

An EnvoyFilter or an AuthorizationPolicy dropped into the config directory, or a
misspelt DestinationRule, was accepted without a word (and `analyze` said "No validation
issues found"), leaving the user believing it in force. Kinds of other concerns, as
`kubectl apply` users keep them beside their mesh config, stay ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from istiolite.api import Other, parse_yaml
from istiolite.cli import main

SUPPORTED_LIST = (
    "VirtualService, DestinationRule, Sidecar, WorkloadEntry, Gateway, ServiceEntry "
    "(networking.istio.io/v1); Service, Pod, Secret (v1)"
)


def document(api_version: str, kind: str) -> str:
    return f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x, namespace: ns}}\n"


def only_error(api_version: str, kind: str) -> tuple[str, str]:
    [parsed] = parse_yaml(document(api_version, kind))
    assert parsed.error is not None, f"{api_version} {kind} was accepted"
    [error] = parsed.error.errors
    return ".".join(map(str, error.path)), error.message


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("networking.istio.io/v1alpha3", "EnvoyFilter"),
        ("networking.istio.io/v1", "WorkloadGroup"),
        ("networking.istio.io/v1", "ProxyConfig"),
        ("networking.istio.io/v1", "Gizmo"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("security.istio.io/v1beta1", "PeerAuthentication"),
        ("security.istio.io/v1", "RequestAuthentication"),
        ("telemetry.istio.io/v1", "Telemetry"),
        ("extensions.istio.io/v1alpha1", "WasmPlugin"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("networking.k8s.io/v1", "Ingress"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ],
)
def test_a_kind_of_a_mesh_group_that_istiolite_does_not_implement_is_an_error(
    api_version: str, kind: str
) -> None:
    field, message = only_error(api_version, kind)
    assert field == "kind"
    assert f"{kind!r} is not supported by istiolite" in message
    assert SUPPORTED_LIST in message


@pytest.mark.parametrize(
    ("api_version", "kind", "meant"),
    [
        ("networking.istio.io/v1", "DestinatonRule", "DestinationRule"),
        ("networking.istio.io/v1", "VirtualSevice", "VirtualService"),
        ("networking.istio.io/v1", "virtualservice", "VirtualService"),
        ("networking.istio.io/v1", "Sidecr", "Sidecar"),
        ("networking.istio.io/v1", "WorkloadEntries", "WorkloadEntry"),
        ("networking.istio.io/v1", "Gatway", "Gateway"),
        ("networking.istio.io/v1beta1", "ServiceEntries", "ServiceEntry"),
        ("networking.istio.io/v1", "gateway", "Gateway"),
        ("v1", "Secrets", "Secret"),
        ("v1", "Servce", "Service"),
        ("v1", "Services", "Service"),
        ("v1", "Pods", "Pod"),
        ("v1", "service", "Service"),
        ("discovery.k8s.io/v1", "EndpointSlices", "EndpointSlice"),
    ],
)
def test_a_misspelt_kind_is_an_error_that_names_the_kind_meant(
    api_version: str, kind: str, meant: str
) -> None:
    field, message = only_error(api_version, kind)
    assert field == "kind"
    assert f"unknown kind {kind!r} (did you mean {meant!r}?)" in message
    assert SUPPORTED_LIST in message


def test_gateway_apis_gateway_is_not_taken_for_istios() -> None:
    field, message = only_error("gateway.networking.k8s.io/v1", "Gateway")
    assert field == "kind"
    assert message.startswith("gateway.networking.k8s.io kind 'Gateway' is not supported")
    assert "istiolite reads Gateway as networking.istio.io/v1" in message


@pytest.mark.parametrize(
    ("api_version", "kind", "accepted"),
    [
        ("v1", "VirtualService", "networking.istio.io/v1, networking.istio.io/v1beta1"),
        ("networking.istio.io/v1", "Service", "must be one of v1,"),
        ("apps/v1", "Pod", "must be one of v1,"),
        ("discovery.k8s.io/v1beta1", "EndpointSlice", "discovery.k8s.io/v1,"),
        ("v2", "Service", "must be one of v1,"),
        ("security.istio.io/v1", "Sidecar", "networking.istio.io/v1,"),
        ("networking.istio.io/v1", "Secret", "must be one of v1,"),
    ],
)
def test_a_supported_kind_in_another_kubernetes_or_istio_group_is_an_error(
    api_version: str, kind: str, accepted: str
) -> None:
    field, message = only_error(api_version, kind)
    assert field == "apiVersion"
    assert accepted in message and repr(api_version) in message


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Namespace"),
        ("v1", "Node"),
        ("v1", "Endpoints"),
        ("v1", "ServiceAccount"),
        ("apps/v1", "Deployment"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("serving.knative.dev/v1", "Service"),  # Knative's Service is Knative's
        ("example.com/v1", "Gizmo"),
    ],
)
def test_kinds_of_other_concerns_stay_ignored(api_version: str, kind: str) -> None:
    [parsed] = parse_yaml(document(api_version, kind))
    assert parsed.error is None, parsed.error
    assert isinstance(parsed.resource, Other) and parsed.resource.kind == kind


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("networking.istio.io/v1", "DestinatonRule"), ("networking.istio.io/v1", "Gizmo")],
)
def test_analyze_reports_an_ignored_kind_and_exits_1(
    tmp_path: Path, api_version: str, kind: str
) -> None:
    file = tmp_path / "mesh.yaml"
    file.write_text(document(api_version, kind))
    result = CliRunner().invoke(main, ["analyze", "-f", str(file)])
    assert result.exit_code == 1, result.output
    assert "No validation issues" not in result.output
    assert f"Error [InvalidResource] {kind} ns/x ({file}#0) kind: " in result.output
