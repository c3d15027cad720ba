"""The real control plane behaves like a cluster's: objects round-trip, watches stream,
RBAC denies what no binding allows, CRDs serve instances, and the version is the release's."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from collections.abc import Awaitable, Callable

import httpx2
import pytest
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.models import User
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apiextensions_v1 import (
    CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec,
    CustomResourceDefinitionVersion,
    CustomResourceValidation,
    JSONSchemaProps,
)
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.discovery_v1 import Endpoint, EndpointConditions, EndpointPort
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.authentication_v1 import SelfSubjectReview
from lightkube.resources.core_v1 import Namespace, Pod, Service, ServiceAccount
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from istiolite.testing.apiserver import SERVICE_CLUSTER_IP_RANGE, ControlPlane

pytestmark = pytest.mark.kube


@pytest.fixture
async def namespace(kube: AsyncClient) -> str:
    # Without kube-controller-manager a deleted namespace never finishes terminating, so
    # every test gets a fresh one instead of cleaning up.
    name = f"test-{uuid.uuid4().hex[:8]}"
    await kube.create(Namespace(metadata=ObjectMeta(name=name)))
    return name


def reviews_service(namespace: str, name: str = "reviews") -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace=namespace, labels={"app": "reviews"}),
        spec=ServiceSpec(
            selector={"app": "reviews"},
            ports=[ServicePort(name="http", port=9080, targetPort=9080)],
        ),
    )


async def test_service_and_endpointslice_round_trip(kube: AsyncClient, namespace: str) -> None:
    await kube.create(reviews_service(namespace))
    await kube.create(
        EndpointSlice(
            metadata=ObjectMeta(
                name="reviews-abc",
                namespace=namespace,
                labels={"kubernetes.io/service-name": "reviews"},
            ),
            addressType="IPv4",
            endpoints=[
                Endpoint(addresses=["10.1.0.5"], conditions=EndpointConditions(ready=True)),
                Endpoint(addresses=["10.1.0.6"], conditions=EndpointConditions(ready=False)),
            ],
            ports=[EndpointPort(name="http", port=9080, protocol="TCP")],
        )
    )

    service = await kube.get(Service, "reviews", namespace=namespace)
    slice_ = await kube.get(EndpointSlice, "reviews-abc", namespace=namespace)

    assert service.spec is not None and service.spec.clusterIP is not None
    assert ipaddress.ip_address(service.spec.clusterIP) in ipaddress.ip_network(
        SERVICE_CLUSTER_IP_RANGE
    )
    assert [(p.name, p.port, p.protocol) for p in service.spec.ports or []] == [
        ("http", 9080, "TCP")  # protocol defaulted by the server
    ]
    readiness = [(e.addresses, e.conditions and e.conditions.ready) for e in slice_.endpoints or []]
    assert readiness == [(["10.1.0.5"], True), (["10.1.0.6"], False)]


async def test_watch_sees_added_then_deleted(kube: AsyncClient, namespace: str) -> None:
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def watch() -> None:
        async for op, obj in kube.watch(Service, namespace=namespace):
            assert obj.metadata is not None and obj.metadata.name is not None
            await events.put((op, obj.metadata.name))

    watcher = asyncio.create_task(watch())
    try:
        await kube.create(reviews_service(namespace, "ratings"))
        # A watch that starts after the create still reports the object as ADDED.
        assert await asyncio.wait_for(events.get(), 10) == ("ADDED", "ratings")
        await kube.delete(Service, "ratings", namespace=namespace)
        assert await asyncio.wait_for(events.get(), 10) == ("DELETED", "ratings")
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_rbac_denies_a_service_account_until_bound(
    kube: AsyncClient, kubeconfig: KubeConfig, namespace: str
) -> None:
    await kube.create(ServiceAccount(metadata=ObjectMeta(name="nobody", namespace=namespace)))
    token = await kube.create(
        ServiceAccount.Token(metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[])),
        "nobody",
        namespace=namespace,
    )
    assert token.status is not None and token.status.token

    async with client_as(kubeconfig, token.status.token) as as_nobody:
        review = await as_nobody.create(SelfSubjectReview())
        assert review.status is not None and review.status.userInfo is not None
        assert review.status.userInfo.username == f"system:serviceaccount:{namespace}:nobody"

        with pytest.raises(ApiError) as denied:
            await list_pods(as_nobody, namespace)
        assert denied.value.status.code == 403

        await bind_pod_reader(kube, namespace=namespace, service_account="nobody")
        # The RBAC authorizer reads bindings from an informer: allowed shortly, not at once.
        async with asyncio.timeout(10):
            await retry_while_denied(lambda: list_pods(as_nobody, namespace))


async def test_crd_serves_instances(kube: AsyncClient, namespace: str) -> None:
    await kube.apply(widget_crd())
    await kube.wait(
        CustomResourceDefinition, "widgets.test.istiolite.io", for_conditions=["Established"]
    )
    widget = create_namespaced_resource("test.istiolite.io", "v1", "Widget", "widgets")

    await kube.create(widget(metadata=ObjectMeta(name="w1", namespace=namespace), spec={"size": 3}))
    got = await kube.get(widget, "w1", namespace=namespace)

    assert got.spec == {"size": 3}
    with pytest.raises(ApiError) as invalid:
        await kube.create(
            widget(metadata=ObjectMeta(name="w2", namespace=namespace), spec={"size": "big"})
        )
    assert invalid.value.status.code == 422


async def test_server_reports_its_release_version(kube_control_plane: ControlPlane) -> None:
    # Without the build's version ldflags the server says v0.0.0-master and clients that
    # check the server version (kubectl, client-go's discovery) refuse or warn.
    async with httpx2.AsyncClient(
        verify=kube_control_plane.admin_ssl_context(), trust_env=False
    ) as http:
        response = await http.get(f"{kube_control_plane.url}/version")
    version = response.raise_for_status().json()

    match = re.fullmatch(r"v1\.(\d+)\.\d+", version["gitVersion"])
    assert match is not None, version
    assert (version["major"], version["minor"]) == ("1", match[1])


# --- helpers -------------------------------------------------------------------------------


def client_as(kubeconfig: KubeConfig, token: str) -> AsyncClient:
    """A client for the same server that authenticates with `token` instead of the admin cert."""
    current = kubeconfig.get()
    assert current is not None
    config = KubeConfig.from_one(cluster=current.cluster, user=User(token=token))
    return AsyncClient(config, trust_env=False)


async def list_pods(client: AsyncClient, namespace: str) -> list[Pod]:
    return [pod async for pod in client.list(Pod, namespace=namespace)]


async def bind_pod_reader(kube: AsyncClient, *, namespace: str, service_account: str) -> None:
    await kube.create(
        Role(
            metadata=ObjectMeta(name="pod-reader", namespace=namespace),
            rules=[PolicyRule(apiGroups=[""], resources=["pods"], verbs=["list"])],
        )
    )
    await kube.create(
        RoleBinding(
            metadata=ObjectMeta(name="pod-reader", namespace=namespace),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
            subjects=[Subject(kind="ServiceAccount", name=service_account, namespace=namespace)],
        )
    )


async def retry_while_denied(attempt: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await attempt()
            return
        except ApiError as e:
            if e.status.code != 403:
                raise
            await asyncio.sleep(0.1)


def widget_crd() -> CustomResourceDefinition:
    schema = JSONSchemaProps(
        type="object",
        properties={
            "spec": JSONSchemaProps(
                type="object", properties={"size": JSONSchemaProps(type="integer")}
            )
        },
    )
    return CustomResourceDefinition(
        metadata=ObjectMeta(name="widgets.test.istiolite.io"),
        spec=CustomResourceDefinitionSpec(
            group="test.istiolite.io",
            scope="Namespaced",
            names=CustomResourceDefinitionNames(kind="Widget", plural="widgets"),
            versions=[
                CustomResourceDefinitionVersion(
                    name="v1",
                    served=True,
                    storage=True,
                    schema=CustomResourceValidation(openAPIV3Schema=schema),
                )
            ],
        ),
    )
