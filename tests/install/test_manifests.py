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
}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects if o["kind"] != "CustomResourceDefinition"}


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
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    watched = {("", r) for r in ("services", "pods", "nodes", "namespaces")}
    watched |= {("discovery.k8s.io", "endpointslices")}
    istio = ("virtualservices", "destinationrules", "sidecars")
    watched |= {("networking.istio.io", r) for r in istio}
    expected = {(g, r, v) for g, r in watched for v in ("list", "watch")}
    assert granted == expected | {("", "events", "create")}


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
