"""pilot-discovery, running against a real API server, injects sidecars through it: a
MutatingWebhookConfiguration points the server at discovery's webhook on loopback, and Pods
created in a namespace labelled `istio-injection=enabled` come out with the proxy."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.models.admissionregistration_v1 import (
    MutatingWebhook,
    RuleWithOperations,
    WebhookClientConfig,
)
from lightkube.models.meta_v1 import LabelSelector, LabelSelectorRequirement, ObjectMeta
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.core_v1 import Pod

from istiolite.testing.apiserver import ControlPlane
from istiolite.testing.mesh import Discovery, free_port
from tests.inject.reviews import pod
from tests.inject.support import ServingFiles, write_serving_files
from tests.kube.support import new_namespace

pytestmark = pytest.mark.kube


@pytest.fixture
def serving(tmp_path: Path) -> ServingFiles:
    return write_serving_files(tmp_path)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def discovery(
    istio_crds: ControlPlane, tmp_path: Path, serving: ServingFiles, port: int
) -> Iterator[Discovery]:
    started = Discovery(
        None,
        tmp_path,
        extra_args=[
            f"--kubeconfig={istio_crds.kubeconfig}",
            f"--webhook-addr=127.0.0.1:{port}",
            f"--webhook-cert={serving.cert_file}",
            f"--webhook-key={serving.key_file}",
            "--proxy-image=registry.example/proxy:test",
        ],
    ).start()
    yield started
    started.stop()


@pytest.fixture
async def namespaces(kube: AsyncClient) -> tuple[str, str]:
    """One namespace labelled for injection, one not."""
    return (
        await new_namespace(kube, labels={"istio-injection": "enabled"}),
        await new_namespace(kube),
    )


@pytest.fixture
async def registered(
    kube: AsyncClient,
    discovery: Discovery,
    port: int,
    serving: ServingFiles,
    namespaces: tuple[str, str],
) -> AsyncIterator[None]:
    name = f"istiolite-sidecar-injector-{namespaces[0]}"
    webhook = MutatingWebhook(
        name="sidecar-injector.istiolite.io",
        clientConfig=WebhookClientConfig(
            url=f"https://127.0.0.1:{port}/inject",
            caBundle=base64.b64encode(serving.ca_file.read_bytes()).decode(),
        ),
        rules=[
            RuleWithOperations(
                operations=["CREATE"], apiGroups=[""], apiVersions=["v1"], resources=["pods"]
            )
        ],
        # Istio's selector; the name list keeps this session's other tests out of its reach.
        namespaceSelector=LabelSelector(
            matchLabels={"istio-injection": "enabled"},
            matchExpressions=[
                LabelSelectorRequirement(
                    key="kubernetes.io/metadata.name", operator="In", values=list(namespaces)
                )
            ],
        ),
        sideEffects="None",
        admissionReviewVersions=["v1"],
        failurePolicy="Fail",
        timeoutSeconds=10,
    )
    await kube.create(
        MutatingWebhookConfiguration(metadata=ObjectMeta(name=name), webhooks=[webhook])
    )
    try:
        yield
    finally:
        await kube.delete(MutatingWebhookConfiguration, name)


async def create_pod(kube: AsyncClient, namespace: str, *, dry_run: bool = False) -> Any:
    body = pod()
    body["metadata"] = {"generateName": "web-", "namespace": namespace, "labels": {"app": "web"}}
    return await kube.create(Pod.from_dict(body), dry_run=dry_run)


def containers(created: Pod) -> list[str]:
    assert created.spec is not None
    return [c.name for c in [*(created.spec.initContainers or []), *created.spec.containers]]


async def test_the_api_server_injects_pods_through_discovery(
    kube: AsyncClient, registered: None, namespaces: tuple[str, str], discovery: Discovery
) -> None:
    labelled, plain = namespaces
    # The API server picks up webhook configurations from a watch; dry runs tell when.
    for _ in range(300):
        if "istio-proxy" in containers(await create_pod(kube, labelled, dry_run=True)):
            break
        await asyncio.sleep(0.1)

    injected = await create_pod(kube, labelled)
    untouched = await create_pod(kube, plain)

    assert containers(injected) == ["istio-init", "web", "istio-proxy"]
    proxy = next(c for c in injected.spec.containers if c.name == "istio-proxy")
    assert proxy.image == "registry.example/proxy:test"
    assert "sidecar.istio.io/status" in (injected.metadata.annotations or {})
    assert containers(untouched) == ["web"]
    injections = discovery.metrics().get("sidecar_injection_success_total", 0)
    assert injections >= 2  # the dry runs count too
