"""The VirtualService, DestinationRule, Sidecar, Gateway and ServiceEntry CRDs: derived from the
API model, structural, and admitting exactly the shapes istiolite reads, under every version
Istio serves."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, AsyncClient

from istiolite.api import ValidationError, parse_resource
from istiolite.install import crds
from istiolite.testing.apiserver import ControlPlane
from tests.kube.support import istio_resource, new_namespace

ROOT = Path(__file__).parent.parent.parent
VALID_CONFIG = [
    *sorted((ROOT / "samples" / "bookinfo" / "networking").glob("*.yaml")),
    ROOT / "tests" / "discovery" / "testdata" / "mesh.yaml",
    ROOT / "tests" / "api" / "testdata" / "bookinfo.yaml",
    ROOT / "tests" / "api" / "testdata" / "sidecar.yaml",
]
ISTIO_KINDS = ("VirtualService", "DestinationRule", "Sidecar", "Gateway", "ServiceEntry")
VERSIONS = ("v1", "v1beta1", "v1alpha3")


def test_the_shipped_manifests_are_generated_from_the_api_model() -> None:
    if os.environ.get("REFRESH_GOLDEN"):
        crds.MANIFEST.write_text(crds.render())
    assert crds.MANIFEST.read_text() == crds.render(), "run with REFRESH_GOLDEN=1 to regenerate"


def test_every_schema_node_has_a_type_and_objects_keep_unknown_fields() -> None:
    def walk(schema: dict[str, Any], path: str) -> None:
        assert "type" in schema, f"{path} has no type: not a structural schema"
        if schema["type"] == "object" and "additionalProperties" not in schema:
            assert schema.get("x-kubernetes-preserve-unknown-fields") is True, path
        for name, child in schema.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                walk(schema[key], f"{path}[{key}]")

    for manifest in crds.load():
        for version in manifest["spec"]["versions"]:
            root = version["schema"]["openAPIV3Schema"]
            assert root["type"] == "object"
            walk(root["properties"]["spec"], f"{manifest['metadata']['name']}/{version['name']}")


def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The properties of `spec` in the first version's schema (all versions share it)."""
    spec: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]
    return spec


def test_every_istio_kind_has_a_crd_served_under_every_version() -> None:
    shipped = {c["spec"]["names"]["kind"]: c for c in crds.load()}
    assert tuple(shipped) == ISTIO_KINDS
    plurals = {"ServiceEntry": "serviceentries"}
    for kind, crd in shipped.items():
        plural = plurals.get(kind, f"{kind.lower()}s")
        assert crd["metadata"]["name"] == f"{plural}.networking.istio.io"
        assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
            ("v1", True, True),
            ("v1beta1", True, False),
            ("v1alpha3", True, False),
        ]


def test_the_api_model_fields_appear_in_the_schema() -> None:
    [vs, dr, sidecar, gateway, entry] = crds.load()
    http = vs["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["http"]
    route = http["items"]["properties"]
    assert route["timeout"] == {"type": "string"}
    assert route["route"]["items"]["properties"]["weight"] == {"type": "integer"}
    policy = dr["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    assert (
        "consecutive5xxErrors"
        in policy["trafficPolicy"]["properties"]["outlierDetection"]["properties"]
    )
    sidecar_spec = spec_schema(sidecar)
    assert sorted(sidecar_spec) == ["egress", "outboundTrafficPolicy", "workloadSelector"]
    assert sidecar_spec["egress"]["items"]["properties"]["hosts"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert sidecar_spec["outboundTrafficPolicy"]["properties"]["mode"] == {"type": "string"}
    assert sidecar_spec["workloadSelector"]["properties"]["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    server = spec_schema(gateway)["servers"]["items"]["properties"]
    assert server["port"]["properties"]["number"] == {"type": "integer"}
    assert server["tls"]["properties"]["credentialName"] == {"type": "string"}
    entry_spec = spec_schema(entry)
    assert entry_spec["endpoints"]["items"]["properties"]["ports"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert entry_spec["resolution"] == {"type": "string"}


# --- against the real API server ---------------------------------------------------------


@pytest.fixture
async def namespace(kube: AsyncClient, istio_crds: ControlPlane) -> str:
    return await new_namespace(kube)


def _istio_documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in VALID_CONFIG:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("kind") in ISTIO_KINDS:
                parse_resource(doc)  # valid to istiolite, so the server must admit it too
                out.append((f"{path.name}#{i}", doc))
    return out


@pytest.mark.kube
async def test_the_server_admits_every_valid_istio_document(
    kube: AsyncClient, namespace: str
) -> None:
    documents = _istio_documents()
    assert len(documents) > 20
    for source, doc in documents:
        resource = istio_resource(doc["kind"], doc["apiVersion"].rsplit("/", 1)[1])
        body = {
            **doc,
            "metadata": {
                **doc["metadata"],
                "namespace": namespace,
                "name": f"{doc['metadata']['name']}-{uuid.uuid4().hex[:6]}",
            },
        }
        created = await kube.create(resource(**body))
        assert created["spec"] == doc["spec"], f"{source}: the server changed the spec"


@pytest.mark.kube
async def test_every_istio_version_is_served_and_converts(
    kube: AsyncClient, namespace: str
) -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
    }
    await kube.create(istio_resource("VirtualService", "v1alpha3")(**body))

    for version in VERSIONS:
        got = await kube.get(
            istio_resource("VirtualService", version), "reviews", namespace=namespace
        )
        assert got["apiVersion"] == f"networking.istio.io/{version}"
        assert got["spec"] == body["spec"]


@pytest.mark.kube
async def test_a_field_of_the_wrong_type_is_refused_by_the_server_with_its_path(
    kube: AsyncClient, namespace: str
) -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews"}, "weight": "most"}]}],
        },
    }
    with pytest.raises(ApiError) as refused:
        await kube.create(istio_resource("VirtualService")(**body))
    assert refused.value.status.code == 422
    assert "spec.http[0].route[0].weight" in str(refused.value.status.message)


@pytest.mark.kube
async def test_unknown_fields_reach_istiolite_to_be_rejected_with_a_reason(
    kube: AsyncClient, namespace: str
) -> None:
    # Pruning would silently drop an unsupported Istio field; it must arrive, and be refused.
    body: dict[str, Any] = {
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [{"destination": {"host": "reviews"}}],
                    "mirrors": [{"destination": {"host": "reviews"}}],
                }
            ],
        },
    }
    created = await kube.create(istio_resource("VirtualService")(**body))
    assert created["spec"] == body["spec"]
    with pytest.raises(ValidationError, match=r"spec\.http\[0\]\.mirrors: not supported"):
        parse_resource(dict(created))


@pytest.mark.kube
@pytest.mark.parametrize(
    ("kind", "spec", "problem"),
    [
        (
            "Gateway",
            {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {
                        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                        "hosts": ["*"],
                        "tls": {"mode": "SIMPLE", "serverCertificate": "/etc/certs/tls.crt"},
                    }
                ],
            },
            r"spec\.servers\[0\]\.tls\.serverCertificate: not supported: certificates from files",
        ),
        (
            "ServiceEntry",
            {"hosts": ["api.example.com"], "workloadSelector": {"labels": {"app": "vm"}}},
            r"spec\.workloadSelector: not supported",
        ),
    ],
)
async def test_gateway_and_service_entry_fields_istiolite_lacks_arrive_to_be_refused(
    kube: AsyncClient, namespace: str, kind: str, spec: dict[str, Any], problem: str
) -> None:
    body: dict[str, Any] = {"metadata": {"name": "x", "namespace": namespace}, "spec": spec}
    created = await kube.create(istio_resource(kind, "v1beta1")(**body))
    assert created["spec"] == spec
    with pytest.raises(ValidationError, match=problem):
        parse_resource(dict(created))


# --- Sidecar against the real API server -------------------------------------------------


def _sidecar(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"sc-{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": spec,
    }


@pytest.mark.kube
async def test_a_sidecar_is_served_under_every_version_and_converts(
    kube: AsyncClient, namespace: str
) -> None:
    body = _sidecar(
        namespace,
        {
            "workloadSelector": {"labels": {"app": "reviews"}},
            "egress": [{"hosts": ["./*", "istio-system/*"]}],
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        },
    )
    await kube.create(istio_resource("Sidecar", "v1alpha3")(**body))

    for version in VERSIONS:
        got = await kube.get(
            istio_resource("Sidecar", version), body["metadata"]["name"], namespace=namespace
        )
        assert got["apiVersion"] == f"networking.istio.io/{version}"
        assert got["spec"] == body["spec"]


@pytest.mark.kube
@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"egress": [{"hosts": "./*"}]}, "spec.egress[0].hosts"),
        ({"egress": {"hosts": ["./*"]}}, "spec.egress"),
        ({"workloadSelector": {"labels": {"app": 1}}}, "spec.workloadSelector.labels.app"),
        ({"outboundTrafficPolicy": {"mode": 1}}, "spec.outboundTrafficPolicy.mode"),
    ],
)
async def test_a_sidecar_field_of_the_wrong_type_is_refused_by_the_server(
    kube: AsyncClient, namespace: str, spec: dict[str, Any], path: str
) -> None:
    with pytest.raises(ApiError) as refused:
        await kube.create(istio_resource("Sidecar")(**_sidecar(namespace, spec)))
    assert refused.value.status.code == 422
    assert path in str(refused.value.status.message)


@pytest.mark.kube
@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {"ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"}}]},
            r"spec\.ingress: not supported: inbound listener settings",
        ),
        (
            {"egress": [{"port": {"number": 9080}, "hosts": ["./*"]}]},
            r"spec\.egress\[0\]\.port: not supported: port-specific egress listeners",
        ),
        (
            {"outboundTrafficPolicy": {"egressProxy": {"host": "egress"}}},
            r"spec\.outboundTrafficPolicy\.egressProxy: not supported: egress proxies",
        ),
    ],
)
async def test_unsupported_sidecar_fields_reach_istiolite_to_be_rejected(
    kube: AsyncClient, namespace: str, spec: dict[str, Any], problem: str
) -> None:
    # Admitted shapes with fields the schema does not list: kept, then refused with the reason.
    created = await kube.create(istio_resource("Sidecar")(**_sidecar(namespace, spec)))
    assert created["spec"] == spec
    with pytest.raises(ValidationError, match=problem):
        parse_resource(dict(created))


@pytest.mark.kube
async def test_meaning_is_istiolites_to_check_not_the_servers(
    kube: AsyncClient, namespace: str
) -> None:
    # Well-typed but wrong: the server admits it, istiolite refuses it naming the entry.
    spec = {"egress": [{"hosts": ["reviews.default.svc.cluster.local"]}]}
    created = await kube.create(istio_resource("Sidecar")(**_sidecar(namespace, spec)))
    with pytest.raises(ValidationError, match=r"spec\.egress\[0\]\.hosts\[0\]: must be "):
        parse_resource(dict(created))
