"""Kubernetes objects become small typed models; what the mesh does not use is dropped."""

from __future__ import annotations

import pytest

from istiolite.api import EndpointSlice, Other, Pod, Service, ValidationError, parse_resource
from istiolite.api.resources import Protocol, port_protocol

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "reviews",
        "namespace": "bookinfo",
        "managedFields": [{"manager": "kubectl"}],
        "labels": {"app": "reviews"},
    },
    "spec": {
        "clusterIP": "10.96.0.12",
        "selector": {"app": "reviews"},
        "ports": [
            {"name": "http", "port": 9080, "targetPort": 9080, "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics", "appProtocol": "http"},
            {"name": "db", "port": 5432},
        ],
    },
}


def test_service_keeps_what_the_mesh_needs() -> None:
    service = parse_resource(SERVICE)
    assert isinstance(service, Service)
    assert service.hostname() == "reviews.bookinfo.svc.cluster.local"
    assert service.cluster_ip == "10.96.0.12"
    assert [(p.port, p.target_port, p.protocol) for p in service.ports] == [
        (9080, 9080, Protocol.HTTP),
        (9090, "metrics", Protocol.HTTP),
        (5432, None, Protocol.TCP),
    ]


def test_headless_service_has_no_cluster_ip() -> None:
    doc = {**SERVICE, "spec": {**SERVICE["spec"], "clusterIP": "None"}}  # type: ignore[dict-item]
    service = parse_resource(doc)
    assert isinstance(service, Service) and service.cluster_ip is None


@pytest.mark.parametrize(
    ("name", "app_protocol", "l4", "expected"),
    [
        ("http", None, "TCP", Protocol.HTTP),
        ("http-web", None, "TCP", Protocol.HTTP),
        ("grpc-api", None, "TCP", Protocol.GRPC),
        ("http2", None, "TCP", Protocol.HTTP2),
        ("web", "http", "TCP", Protocol.HTTP),
        ("http", "tcp", "TCP", Protocol.TCP),
        ("", None, "TCP", Protocol.TCP),
        ("mongo", None, "TCP", Protocol.TCP),
        ("dns", None, "UDP", Protocol.UDP),
        ("x", "kubernetes.io/h2c", "TCP", Protocol.HTTP2),
    ],
)
def test_port_protocol_follows_istio_naming(
    name: str, app_protocol: str | None, l4: str, expected: Protocol
) -> None:
    assert port_protocol(name=name, app_protocol=app_protocol, l4=l4) is expected


def test_endpoint_slice_readiness_and_owner() -> None:
    slice_ = parse_resource(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "reviews-abc",
                "labels": {"kubernetes.io/service-name": "reviews"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.0.0.5"],
                    "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "name": "reviews-v1-x"},
                },
                {"addresses": ["10.0.0.6"], "conditions": {"ready": False, "terminating": True}},
                {"addresses": ["10.0.0.7"]},
            ],
            "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
        }
    )
    assert isinstance(slice_, EndpointSlice)
    assert slice_.service == "reviews"
    assert [(e.addresses, e.ready, e.terminating, e.pod) for e in slice_.endpoints] == [
        (("10.0.0.5",), True, False, "reviews-v1-x"),
        (("10.0.0.6",), False, True, None),
        (("10.0.0.7",), True, False, None),
    ]


def test_pod_readiness_comes_from_its_ready_condition() -> None:
    pod = parse_resource(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reviews-v1-x", "labels": {"app": "reviews", "version": "v1"}},
            "spec": {"serviceAccountName": "bookinfo-reviews", "nodeName": "node-1"},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    assert isinstance(pod, Pod)
    assert (pod.ip, pod.ready, pod.service_account, pod.meta.labels["version"]) == (
        "10.0.0.5",
        True,
        "bookinfo-reviews",
        "v1",
    )


def test_other_kinds_are_kept_as_other() -> None:
    other = parse_resource(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    )
    assert isinstance(other, Other) and other.KIND == "Deployment"


def test_kube_object_with_wrong_types_names_the_field() -> None:
    with pytest.raises(ValidationError, match=r"spec\.ports\[0\]\.port: must be an integer"):
        parse_resource({**SERVICE, "spec": {"ports": [{"port": "http"}]}})
