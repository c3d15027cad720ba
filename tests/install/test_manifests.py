"""The rendered control plane: a golden file per set of values, and the properties that matter
read straight from the objects (names, ports, permissions, security) so a golden refresh cannot
quietly change them.

Refresh after an intended change with `REFRESH_GOLDEN=1 .venv/bin/pytest tests/install` and
read the diff: it is the change in what `istiolite install` applies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from istiolite.install import crds, manifests
from istiolite.install.manifests import inventory, render
from istiolite.install.values import from_sets
from istiolite.install.webhookcerts import WebhookCerts

GOLDEN = Path(__file__).parent.parent / "golden" / "install"
# Fixed stand-ins: rendering only encodes the PEM files, and real keys would change every run.
CERTS = WebhookCerts(
    ca_cert=b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
    ca_key=b"-----BEGIN PRIVATE KEY-----\nCA KEY\n-----END PRIVATE KEY-----\n",
    cert=b"-----BEGIN CERTIFICATE-----\nISTIOD\n-----END CERTIFICATE-----\n",
    key=b"-----BEGIN PRIVATE KEY-----\nISTIOD KEY\n-----END PRIVATE KEY-----\n",
)
CASES = {
    "default": [],
    "custom": [
        "hub=registry.example/mesh",
        "tag=1.2.3",
        "replicas=2",
        "logLevel=debug",
        "nativeSidecar=true",
        "imagePullPolicy=Always",
        "cpuLimit=2",
        "memoryLimit=",
    ],
    "no-gateway": ["gateways.ingress.enabled=false"],
}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """istiod's objects by kind (the gateway's are `gateway_objects`)."""
    return {
        o["kind"]: o
        for o in objects
        if o["kind"] != "CustomResourceDefinition"
        and "istio-ingressgateway" not in str(o["metadata"])
    }


def gateway_objects(values: list[str] | None = None) -> dict[str, dict[str, Any]]:
    objects = render(from_sets(values or []), CERTS)
    return {
        o["kind"]: o
        for o in objects
        if o["metadata"].get("labels", {}).get("app") == "istio-ingressgateway"
    }


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_manifests_match_golden(case: str) -> None:
    # The CRDs have their own generated file (crds.yaml); the golden holds the rest.
    objects = render(from_sets(CASES[case]), CERTS)
    text = manifests.to_yaml([o for o in objects if o["kind"] != "CustomResourceDefinition"])
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("REFRESH_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with REFRESH_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs; REFRESH_GOLDEN=1 to accept"


def test_the_crds_are_the_shipped_ones_applied_right_after_the_namespace() -> None:
    objects = render(from_sets([]), CERTS)
    shipped = crds.load()
    assert [c["metadata"]["name"] for c in shipped] == [
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "sidecars.networking.istio.io",
        "gateways.networking.istio.io",
        "serviceentries.networking.istio.io",
    ]
    assert [o["kind"] for o in objects[:6]] == ["Namespace", *["CustomResourceDefinition"] * 5]
    assert objects[1:6] == shipped
    assert objects[-1]["kind"] == "MutatingWebhookConfiguration"  # last: istiod exists by then


def test_the_cluster_role_grants_exactly_what_the_kube_registry_uses() -> None:
    role = by_kind(render(from_sets([]), CERTS))["ClusterRole"]
    watched = {("", r) for r in ("services", "pods", "nodes", "namespaces")}
    watched |= {("discovery.k8s.io", "endpointslices")}
    istio = ("virtualservices", "destinationrules", "sidecars", "gateways", "serviceentries")
    watched |= {("networking.istio.io", r) for r in istio}
    expected = {(g, r, v) for g, r in watched for v in ("list", "watch")}
    assert grants(role) == expected | {("", "events", "create")}


def test_istiod_reads_secrets_in_istio_system_only_and_the_gateway_reads_none() -> None:
    objects = render(from_sets([]), CERTS)
    istiod = by_kind(objects)
    assert istiod["Role"]["metadata"]["namespace"] == "istio-system"
    assert grants(istiod["Role"]) == {("", "secrets", v) for v in ("get", "list", "watch")}
    assert istiod["RoleBinding"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "istiod",
    }
    assert istiod["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "istiod", "namespace": "istio-system"}
    ]
    # No other binding names any account; the gateway's pods get no API token at all.
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert all(b["subjects"][0]["name"] == "istiod" for b in bindings)
    gateway = gateway_objects()
    assert gateway["ServiceAccount"]["automountServiceAccountToken"] is False
    assert (
        gateway["Deployment"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    )


def test_the_ingress_gateway_is_the_proxy_image_in_router_mode_capturing_nothing() -> None:
    gateway = gateway_objects(["hub=registry.example/mesh", "tag=1.2.3"])
    deployment = gateway["Deployment"]
    assert deployment["metadata"]["namespace"] == "istio-system"
    assert deployment["metadata"]["name"] == "istio-ingressgateway"
    pod = deployment["spec"]["template"]
    assert {"istio": "ingressgateway", "app": "istio-ingressgateway"}.items() <= pod["metadata"][
        "labels"
    ].items()
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert "initContainers" not in pod["spec"]  # no iptables: nothing is captured
    [container] = pod["spec"]["containers"]
    assert container["image"] == "registry.example/mesh/proxy:1.2.3"
    assert container["args"][:2] == ["proxy", "router"]
    assert container["args"][2:] == ["--discovery-address", "istiod.istio-system.svc:15010"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http2": 8080, "https": 8443, "status-port": 15021, "http-envoy-prom": 15090}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/istio/proxy", "/etc/istio/pod"} <= mounts
    assert gateway["ServiceAccount"]["metadata"]["name"] == pod["spec"]["serviceAccountName"]


def test_the_ingress_gateway_service_is_istios_with_fixed_node_ports() -> None:
    service = gateway_objects()["Service"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    ports = {
        p["name"]: (p["port"], p["targetPort"], p.get("nodePort")) for p in service["spec"]["ports"]
    }
    assert ports == {
        "http2": (80, 8080, 31080),
        "https": (443, 8443, 31443),
        "status-port": (15021, 15021, None),
    }


def test_the_ingress_gateway_can_be_left_out() -> None:
    assert gateway_objects(["gateways.ingress.enabled=false"]) == {}
    without = render(from_sets(["gateways.ingress.enabled=false"]), CERTS)
    istiod = by_kind(without)["Deployment"]
    assert istiod["metadata"]["annotations"] == {"install.istiolite.io/ingress-gateway": "false"}
    assert {manifests.ref(o) for o in without} < set(inventory())  # uninstall still knows it


def test_istiod_runs_restricted_with_its_webhook_certificate_mounted() -> None:
    deployment = by_kind(render(from_sets([]), CERTS))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["pilot-discovery", "discovery"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    [mount] = container["volumeMounts"]
    assert env["PILOT_WEBHOOK_CERT"] == f"{mount['mountPath']}/tls.crt"
    assert env["PILOT_WEBHOOK_KEY"] == f"{mount['mountPath']}/tls.key"
    assert env["PILOT_SIDECAR_DISCOVERY_ADDRESS"] == "istiod.istio-system.svc:15010"
    [volume] = pod["volumes"]
    assert volume["secret"]["secretName"] == manifests.SECRET
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}


def test_the_service_exposes_istios_ports_and_the_webhook_calls_it() -> None:
    objects = by_kind(render(from_sets([]), CERTS))
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in objects["Service"]["spec"]["ports"]}
    assert ports == {
        "grpc-xds": (15010, 15010),
        "http-monitoring": (15014, 15014),
        "https-webhook": (443, 15017),
        "http-debug": (8080, 8080),
    }
    [hook] = objects["MutatingWebhookConfiguration"]["webhooks"]
    assert hook["clientConfig"]["service"] == {
        "name": "istiod",
        "namespace": "istio-system",
        "path": "/inject",
        "port": 443,
    }
    assert hook["namespaceSelector"] == {"matchLabels": {"istio-injection": "enabled"}}


def test_dry_run_yaml_round_trips_and_the_inventory_follows_the_render() -> None:
    objects = render(from_sets(["replicas=3"]), CERTS)
    assert list(yaml.safe_load_all(manifests.to_yaml(objects))) == objects
    assert tuple(manifests.ref(o) for o in objects) == inventory()
