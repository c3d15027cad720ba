"""Shared by the kube-tier tests: CRDs, objects, waiting, and reading what an Envoy holds."""

from __future__ import annotations

import typing
import uuid
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, Client, KubeConfig
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.discovery_v1 import Endpoint, EndpointConditions, EndpointPort
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from istiolite.install import crds
from istiolite.testing import mesh
from istiolite.testing.mesh import Envoy, dynamic_names

FIELD_MANAGER = "istiolite-test"


def istio_resource(kind: str, version: str = "v1") -> type[GenericNamespacedResource]:
    """The lightkube class of an Istio kind at one version (`VirtualService`, `v1beta1`)."""
    plural = next(k.plural for k in crds.KINDS if k.kind == kind)
    return create_namespaced_resource("networking.istio.io", version, kind, plural)


VirtualService = istio_resource("VirtualService")


def install_crds(kubeconfig: Path) -> None:
    with Client(
        KubeConfig.from_file(kubeconfig), field_manager=FIELD_MANAGER, trust_env=False
    ) as c:
        for manifest in crds.load():
            crd = typing.cast(
                CustomResourceDefinition, CustomResourceDefinition.from_dict(manifest)
            )
            c.apply(crd, force=True)
            assert crd.metadata is not None and crd.metadata.name is not None
            c.wait(CustomResourceDefinition, crd.metadata.name, for_conditions=["Established"])


async def new_namespace(kube: AsyncClient, labels: dict[str, str] | None = None) -> str:
    # Nothing finalizes deleted namespaces without kube-controller-manager: always a fresh one.
    name = f"mesh-{uuid.uuid4().hex[:8]}"
    await kube.create(Namespace(metadata=ObjectMeta(name=name, labels=labels)))
    return name


def service(namespace: str, name: str, ports: dict[str, int]) -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=ServiceSpec(
            selector={"app": name},
            ports=[ServicePort(name=n, port=p, targetPort=p) for n, p in ports.items()],
        ),
    )


def endpoint_slice(
    namespace: str, service: str, addresses: list[str], ports: dict[str, int]
) -> EndpointSlice:
    return EndpointSlice(
        metadata=ObjectMeta(
            name=f"{service}-abcde",
            namespace=namespace,
            labels={"kubernetes.io/service-name": service},
        ),
        addressType="IPv4",
        endpoints=[
            Endpoint(addresses=[a], conditions=EndpointConditions(ready=True)) for a in addresses
        ],
        ports=[EndpointPort(name=n, port=p, protocol="TCP") for n, p in ports.items()],
    )


def virtual_service(
    namespace: str, host: str, routes: list[str], *, weight: int = 100, api_version: str = "v1"
) -> GenericNamespacedResource:
    """Named HTTP routes to `host`, one per name, each matching the URI prefix `/<name>`."""
    http = [
        {
            "name": name,
            "match": [{"uri": {"prefix": f"/{name}"}}],
            "route": [{"destination": {"host": host}, "weight": weight}],
        }
        for name in routes
    ]
    body: dict[str, Any] = {
        "metadata": {"name": host, "namespace": namespace},
        "spec": {"hosts": [host], "http": http},
    }
    return istio_resource("VirtualService", api_version)(**body)


def clusters(envoy: Envoy) -> set[str]:
    return dynamic_names(envoy.config_dump())["clusters"]


def endpoints(envoy: Envoy, cluster: str) -> set[str]:
    """`address:port` of every endpoint Envoy has for one EDS cluster."""
    for config in envoy.config_dump()["configs"]:
        if not config["@type"].endswith("EndpointsConfigDump"):
            continue
        for entry in config.get("dynamic_endpoint_configs", []):
            assignment = entry["endpoint_config"]
            if assignment["cluster_name"] == cluster:
                return {
                    f"{a['address']}:{a['port_value']}"
                    for group in assignment.get("endpoints", [])
                    for lb in group.get("lb_endpoints", [])
                    for a in [lb["endpoint"]["address"]["socket_address"]]
                }
    return set()


def route_names(envoy: Envoy, route_config: str, host: str) -> list[str]:
    """The names of the routes of one virtual host (`<fqdn>:<port>`) in one route config."""
    return mesh.route_names(envoy.config_dump(), route_config, host)


def rejected_updates(envoy: Envoy) -> dict[str, int]:
    return {k: v for k, v in envoy.stats("update_rejected").items() if v}
