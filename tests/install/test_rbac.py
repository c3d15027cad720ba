"""istiod's ClusterRole, proven with its real identity: a token for the `istiod` ServiceAccount
from the TokenRequest API. The API server's own access reviews show each permission granted and
the ones that must not be; then pilot-discovery itself runs with that token and sees every kind
it watches, and records an Event about an object it refuses."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import Event

from istiolite.install import manifests
from istiolite.testing.mesh import Discovery
from tests.install.support import admin, run, token_kubeconfig

pytestmark = pytest.mark.kube

# Registered, so that lightkube can build the Istio kinds from dicts.
for _kind in ("VirtualService", "DestinationRule", "Sidecar"):
    create_namespaced_resource("networking.istio.io", "v1", _kind, f"{_kind.lower()}s")

GRANTED = [
    (group, resource, verb)
    for group, resources, verbs in manifests.RULES
    for resource in resources
    for verb in verbs
]
# In istio-system only: the gateway's credentials, served to it over SDS.
GRANTED_IN_ISTIO_SYSTEM = [
    (group, resource, verb)
    for group, resources, verbs in manifests.NAMESPACE_RULES
    for resource in resources
    for verb in verbs
]
DENIED = [
    ("", "pods", "delete", None),
    ("", "pods", "create", "default"),
    ("", "secrets", "get", "kube-system"),
    ("", "secrets", "get", "default"),
    ("", "secrets", "list", None),
    ("", "secrets", "watch", None),
    ("", "secrets", "create", manifests.NAMESPACE),
    ("", "secrets", "update", manifests.NAMESPACE),
    ("", "configmaps", "list", None),
    ("networking.istio.io", "virtualservices", "update", "default"),
    ("networking.istio.io", "sidecars", "create", "default"),
    ("discovery.k8s.io", "endpointslices", "create", "default"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch", None),
]


@pytest.fixture
def istiod_kubeconfig(kubeconfig: Path, tmp_path: Path) -> Path:
    result = run("install", kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    return token_kubeconfig(
        kubeconfig, namespace=manifests.NAMESPACE, account=manifests.NAME, out=tmp_path / "istiod"
    )


@pytest.fixture
def as_istiod(istiod_kubeconfig: Path) -> Iterator[Client]:
    with Client(KubeConfig.from_file(istiod_kubeconfig), trust_env=False) as client:
        yield client


def allowed(client: Client, group: str, resource: str, verb: str, namespace: str | None) -> bool:
    review = client.create(
        SelfSubjectAccessReview(
            spec=SelfSubjectAccessReviewSpec(
                resourceAttributes=ResourceAttributes(
                    group=group, resource=resource, verb=verb, namespace=namespace
                )
            )
        )
    )
    assert review.status is not None
    return bool(review.status.allowed)


def test_istiod_may_do_exactly_what_pilot_discovery_needs(as_istiod: Client) -> None:
    # The RBAC authorizer reads bindings from an informer: granted shortly after install.
    deadline = time.monotonic() + 10
    while not allowed(as_istiod, *GRANTED[0], None) and time.monotonic() < deadline:
        time.sleep(0.1)
    for group, resource, verb in GRANTED:
        # Cluster-wide: discovery lists every namespace's objects in one request.
        assert allowed(as_istiod, group, resource, verb, None), (group, resource, verb)
    for group, resource, verb in GRANTED_IN_ISTIO_SYSTEM:
        assert allowed(as_istiod, group, resource, verb, manifests.NAMESPACE), (resource, verb)
    for group, resource, verb, namespace in DENIED:
        assert not allowed(as_istiod, group, resource, verb, namespace), (resource, verb)


def test_the_gateway_may_read_no_secret_nor_anything_else(
    kubeconfig: Path, istiod_kubeconfig: Path, tmp_path: Path
) -> None:
    gateway = token_kubeconfig(
        kubeconfig,
        namespace=manifests.NAMESPACE,
        account=manifests.GATEWAY_ACCOUNT,
        out=tmp_path / "gateway",
    )
    with Client(KubeConfig.from_file(gateway), trust_env=False) as client:
        for namespace in (manifests.NAMESPACE, None):
            for verb in ("get", "list", "watch"):
                assert not allowed(client, "", "secrets", verb, namespace), (verb, namespace)
        for group, resource in (
            ("", "pods"),
            ("", "services"),
            ("discovery.k8s.io", "endpointslices"),
            ("networking.istio.io", "gateways"),
        ):
            assert not allowed(client, group, resource, "list", None), resource


def test_pilot_discovery_runs_on_istiods_identity(
    istiod_kubeconfig: Path, kubeconfig: Path, tmp_path: Path
) -> None:
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    with admin(kubeconfig) as client:
        for obj in objects(namespace):
            client.apply(from_dict(obj))
    discovery = Discovery(None, tmp_path, extra_args=[f"--kubeconfig={istiod_kubeconfig}"])
    discovery.start()
    try:
        wanted = {
            "Namespace",
            "Node",
            "Pod",
            "Service",
            "EndpointSlice",
            "VirtualService",
            "Sidecar",
        }
        deadline = time.monotonic() + 30
        while not wanted <= set(counts := discovery.get("/debug/configz").json()["resources"]):
            assert time.monotonic() < deadline, f"discovery sees only {counts}"
            time.sleep(0.2)
        with admin(kubeconfig) as client:
            while not (events := list(client.list(Event, namespace=namespace))):
                assert time.monotonic() < deadline, "no Event about the invalid DestinationRule"
                time.sleep(0.2)
        assert [e.reason for e in events] == ["InvalidConfiguration"]
        assert events[0].involvedObject.name == "bad"
    finally:
        discovery.stop()
    assert "forbidden" not in discovery.log.read_text().lower()


def objects(namespace: str) -> list[dict[str, Any]]:
    """One object of every kind discovery watches, and one it must refuse with an Event."""
    meta = {"namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{namespace}"}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "labels": {"app": "app"}, **meta},
            "spec": {"containers": [{"name": "app", "image": "app"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "app", **meta},
            "spec": {"selector": {"app": "app"}, "ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "app-1", "labels": {"kubernetes.io/service-name": "app"}, **meta},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}],
            "ports": [{"name": "http", "port": 80}],
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "app", **meta},
            "spec": {"hosts": ["app"], "http": [{"route": [{"destination": {"host": "app"}}]}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "default", **meta},
            "spec": {"egress": [{"hosts": ["./*", "istio-system/*"]}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "bad", **meta},
            "spec": {"host": "app", "subsets": [{"name": "v1", "labels": {}}, {"name": "v1"}]},
        },
    ]
