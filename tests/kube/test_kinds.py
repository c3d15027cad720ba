"""Conversion at the edge: client objects become typed resources without what discovery
does not read, so writes that change nothing discovery reads convert to equal resources."""

from __future__ import annotations

from typing import Any

from lightkube.models.core_v1 import (
    Container,
    NodeSpec,
    PodCondition,
    PodSpec,
    PodStatus,
)
from lightkube.models.meta_v1 import ManagedFieldsEntry, ObjectMeta
from lightkube.resources.core_v1 import Node, Pod

from istiolite.api import Other
from istiolite.api import Pod as MeshPod
from istiolite.discovery.kube.kinds import convert, slim


def client_pod(*, restarts_annotation: str, ready: bool = True) -> dict[str, Any]:
    pod = Pod(
        metadata=ObjectMeta(
            name="reviews-v1-abc",
            namespace="bookinfo",
            uid="0b6c",
            resourceVersion="4711",
            labels={"app": "reviews", "version": "v1"},
            annotations={
                "kubectl.kubernetes.io/restartedAt": restarts_annotation,
                "sidecar.istio.io/inject": "true",
            },
            managedFields=[ManagedFieldsEntry(manager="kubelet", operation="Update")],
        ),
        spec=PodSpec(
            containers=[Container(name="app", image="reviews:v1")],
            nodeName="node-1",
            serviceAccountName="bookinfo-reviews",
        ),
        status=PodStatus(
            phase="Running",
            podIP="10.1.0.5",
            conditions=[PodCondition(type="Ready", status="True" if ready else "False")],
        ),
    )
    return dict(pod.to_dict())


def test_slim_keeps_identity_labels_and_istio_annotations_only() -> None:
    raw = client_pod(restarts_annotation="2024-01-01T00:00:00Z")
    slimmed = slim(raw, api_version="v1", kind="Pod")

    assert slimmed["metadata"] == {
        "name": "reviews-v1-abc",
        "namespace": "bookinfo",
        "labels": {"app": "reviews", "version": "v1"},
        "annotations": {"sidecar.istio.io/inject": "true"},
    }
    assert (slimmed["apiVersion"], slimmed["kind"]) == ("v1", "Pod")
    assert "managedFields" not in str(slimmed)


def test_a_write_that_changes_nothing_read_converts_to_an_equal_resource() -> None:
    first = convert(client_pod(restarts_annotation="monday"), api_version="v1", kind="Pod")
    again = convert(client_pod(restarts_annotation="tuesday"), api_version="v1", kind="Pod")
    not_ready = convert(
        client_pod(restarts_annotation="monday", ready=False), api_version="v1", kind="Pod"
    )

    assert isinstance(first, MeshPod)
    assert (first.ip, first.node_name, first.service_account) == (
        "10.1.0.5",
        "node-1",
        "bookinfo-reviews",
    )
    assert first == again
    assert first != not_ready


def test_nodes_are_kept_as_names_and_labels() -> None:
    node = Node(
        metadata=ObjectMeta(
            name="node-1", labels={"topology.kubernetes.io/zone": "eu-1a"}, resourceVersion="9"
        ),
        spec=NodeSpec(podCIDR="10.1.0.0/24"),
    )
    converted = convert(dict(node.to_dict()), api_version="v1", kind="Node")

    assert isinstance(converted, Other) and converted.kind == "Node"
    assert converted.meta.name == "node-1"
    assert converted.meta.labels == {"topology.kubernetes.io/zone": "eu-1a"}
