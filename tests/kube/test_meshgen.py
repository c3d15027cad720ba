"""The benchmarks' generated Services get clusterIPs the apiserver takes, at both ends of its
service CIDR, and none it refuses."""

from __future__ import annotations

import uuid

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Service

from bench.meshgen import SERVICE_CAPACITY, SERVICE_CIDR, cluster_ip

pytestmark = pytest.mark.kube


def _service(namespace: str, name: str, ip: str) -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=ServiceSpec(clusterIP=ip, ports=[ServicePort(name="http", port=8080)]),
    )


async def test_first_and_last_generated_cluster_ips_are_accepted(kube: AsyncClient) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    await kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    for name, ip in (("first", cluster_ip(0)), ("last", cluster_ip(SERVICE_CAPACITY - 1))):
        created = await kube.create(_service(namespace, name, ip))
        assert created.spec is not None and created.spec.clusterIP == ip


async def test_the_addresses_left_out_are_the_ones_the_apiserver_refuses(
    kube: AsyncClient,
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    await kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    network, broadcast = SERVICE_CIDR.network_address, SERVICE_CIDR.broadcast_address
    for name, ip in (("network", network), ("broadcast", broadcast), ("beyond", broadcast + 1)):
        with pytest.raises(ApiError) as refused:
            await kube.create(_service(namespace, name, str(ip)))
        assert refused.value.status.code == 422
    with pytest.raises(ValueError, match="holds"):
        cluster_ip(SERVICE_CAPACITY)
