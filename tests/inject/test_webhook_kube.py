"""The webhook behind a real kube-apiserver (the `kube` tier).

What only the real API server can show: it trusts the webhook's certificate through the
caBundle, applies the returned patch, and then validates the injected pod as it validates any
pod, so every field the template writes must be one Kubernetes accepts. Manifests from
`kube-inject` are checked the same way, with server-side dry runs.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from istiolite.discovery.inject import inject_manifest
from istiolite.discovery.inject.webhook import WebhookServer
from istiolite.testing.apiserver import ControlPlane, control_plane
from tests.inject.reviews import pod
from tests.inject.support import VALUES, ServingFiles
from tests.kube_tier import kube_binaries_or_skip

pytestmark = pytest.mark.kube

Json = dict[str, Any]
GOLDEN = Path(__file__).parent.parent / "golden" / "inject"
API_PATHS = {
    "Pod": "api/v1",
    "Service": "api/v1",
    "ConfigMap": "api/v1",
    "Deployment": "apis/apps/v1",
    "StatefulSet": "apis/apps/v1",
    "DaemonSet": "apis/apps/v1",
    "ReplicaSet": "apis/apps/v1",
    "Job": "apis/batch/v1",
    "CronJob": "apis/batch/v1",
}


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with control_plane(kube_binaries_or_skip()) as started:
        yield started


@pytest.fixture
async def api(plane: ControlPlane) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        base_url=plane.url, verify=plane.admin_ssl_context(), timeout=30
    ) as client:
        yield client


@pytest.fixture
async def namespace(api: httpx2.AsyncClient) -> str:
    """A fresh namespace (nothing finalizes deleted ones here), labelled for injection."""
    name = f"inject-{uuid.uuid4().hex[:8]}"
    labels = {"istio-injection": "enabled"}
    response = await api.post(
        "/api/v1/namespaces", json={"metadata": {"name": name, "labels": labels}}
    )
    response.raise_for_status()
    return name


@pytest.fixture
async def injecting(
    api: httpx2.AsyncClient, namespace: str, webhook: WebhookServer, serving_files: ServingFiles
) -> str:
    """Registers the webhook for `namespace` only, and waits until the API server uses it."""
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"istiolite-sidecar-injector-{namespace}"},
        "webhooks": [
            {
                "name": "sidecar-injector.istiolite.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{webhook.port}/inject",
                    "caBundle": base64.b64encode(serving_files.ca_file.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {
                    "matchLabels": {
                        "istio-injection": "enabled",
                        "kubernetes.io/metadata.name": namespace,
                    }
                },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            }
        ],
    }
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    (await api.post(path, json=config)).raise_for_status()
    # The API server picks new webhook configurations up from a watch; dry runs tell when.
    for _ in range(300):
        created = await _create(api, namespace, _pod_in(namespace), dry_run=True)
        if "istio-proxy" in _names(created):
            return namespace
        await asyncio.sleep(0.1)
    pytest.fail("the API server never called the webhook")


@pytest.mark.parametrize(
    ("annotations", "init_containers", "containers"),
    [
        ({}, ["istio-init"], ["web", "istio-proxy"]),
        (
            {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"},
            ["istio-init"],
            ["istio-proxy", "web"],
        ),
        ({"sidecar.istio.io/nativeSidecar": "true"}, ["istio-init", "istio-proxy"], ["web"]),
    ],
    ids=["default", "hold", "native-sidecar"],
)
async def test_the_api_server_applies_the_patch_and_accepts_the_injected_pod(
    api: httpx2.AsyncClient,
    injecting: str,
    annotations: dict[str, str],
    init_containers: list[str],
    containers: list[str],
) -> None:
    created = await _create(api, injecting, _pod_in(injecting, annotations))
    spec = created["spec"]
    assert [c["name"] for c in spec.get("initContainers", [])] == init_containers
    assert [c["name"] for c in spec["containers"]] == containers
    web = next(c for c in spec["containers"] if c["name"] == "web")
    assert web["readinessProbe"]["httpGet"]["port"] == 15020
    assert "sidecar.istio.io/status" in created["metadata"]["annotations"]


async def test_the_api_server_tells_the_user_why_a_pod_was_denied(
    api: httpx2.AsyncClient, injecting: str
) -> None:
    bad = _pod_in(injecting, {"traffic.sidecar.istio.io/excludeInboundPorts": "http"})
    response = await api.post(f"/api/v1/namespaces/{injecting}/pods", json=bad)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "denied the request: sidecar injection failed: " in message
    assert "traffic.sidecar.istio.io/excludeInboundPorts" in message


async def test_opted_out_pods_are_created_as_they_are(
    api: httpx2.AsyncClient, injecting: str
) -> None:
    created = await _create(
        api, injecting, _pod_in(injecting, {"sidecar.istio.io/inject": "false"})
    )
    assert _names(created) == ["web"]


@pytest.mark.parametrize(
    "case", sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))
)
async def test_kube_inject_output_is_accepted_by_the_api_server(
    api: httpx2.AsyncClient, namespace: str, case: str
) -> None:
    injected = inject_manifest((GOLDEN / f"{case}.in.yaml").read_text(), VALUES)
    for document in yaml.safe_load_all(injected):
        document["metadata"]["namespace"] = namespace
        await _create(api, namespace, document, dry_run=True)


def _pod_in(namespace: str, annotations: dict[str, str] | None = None) -> Json:
    p = pod()
    p["metadata"] = {
        "generateName": "web-",
        "namespace": namespace,
        "annotations": annotations or {},
    }
    return p


def _names(created: Json) -> list[str]:
    spec = created["spec"]
    return [c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]]


async def _create(
    api: httpx2.AsyncClient, namespace: str, obj: Json, *, dry_run: bool = False
) -> Json:
    resource = obj["kind"].lower() + "s"
    path = f"/{API_PATHS[obj['kind']]}/namespaces/{namespace}/{resource}"
    response = await api.post(path, json=obj, params={"dryRun": "All"} if dry_run else None)
    assert response.status_code == 201, f"{obj['kind']}: {response.text}"
    created: Json = response.json()
    return created
