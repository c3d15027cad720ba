"""AdmissionReview handling without the server: what the kube-apiserver gets back."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from istiolite.discovery.inject import answer, inject
from tests.inject.reviews import apply_response_patch, body, pod, review
from tests.inject.support import VALUES


def test_pod_creation_is_allowed_with_a_patch_that_echoes_the_uid() -> None:
    reply = answer(body(review(pod(), uid="c0ffee")), VALUES)
    assert reply.status == 200
    assert reply.review is not None
    assert reply.review["apiVersion"] == "admission.k8s.io/v1"
    assert reply.review["kind"] == "AdmissionReview"
    response = reply.review["response"]
    assert response["uid"] == "c0ffee"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert apply_response_patch(pod(), response) == inject(pod(), VALUES)


def test_patch_paths_come_from_diffing_so_existing_fields_are_replaced_not_duplicated() -> None:
    reply = answer(body(review(pod(volumes=[{"name": "data", "emptyDir": {}}]))), VALUES)
    assert reply.review is not None
    operations = json.loads(base64.b64decode(reply.review["response"]["patch"]))
    paths = {op["path"] for op in operations}
    assert "/spec/volumes" not in paths  # the pod had volumes: they are appended to
    assert {"/spec/volumes/1", "/spec/volumes/2", "/spec/volumes/3"} <= paths


def test_objects_other_than_pods_are_allowed_unchanged() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    kind = {"group": "", "version": "v1", "kind": "Service"}
    reply = answer(body(review(service, kind=kind, uid="svc")), VALUES)
    assert reply.review == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "svc", "allowed": True},
    }


@pytest.mark.parametrize(
    "fields", [{"operation": "UPDATE"}, {"subResource": "ephemeralcontainers"}]
)
def test_updates_and_subresources_are_allowed_unchanged(fields: dict[str, Any]) -> None:
    reply = answer(body(review(pod(), **fields)), VALUES)
    assert reply.review is not None
    assert "patch" not in reply.review["response"]
    assert reply.outcome == "ignored"


def test_opted_out_and_host_network_pods_are_allowed_without_a_patch() -> None:
    opted_out = pod()
    opted_out["metadata"]["annotations"] = {"sidecar.istio.io/inject": "false"}
    for p in (opted_out, pod(hostNetwork=True)):
        reply = answer(body(review(p)), VALUES)
        assert reply.review is not None
        assert reply.review["response"] == {"uid": "7d3f0e0a-1", "allowed": True}
        assert reply.outcome == "skipped"


def test_a_pod_with_a_bad_annotation_is_denied_with_the_annotation_named() -> None:
    p = pod()
    p["metadata"]["annotations"] = {"traffic.sidecar.istio.io/excludeInboundPorts": "http"}
    reply = answer(body(review(p, uid="bad-1")), VALUES)
    assert reply.status == 200
    assert reply.review is not None
    response = reply.review["response"]
    assert (response["uid"], response["allowed"]) == ("bad-1", False)
    assert response["status"]["code"] == 400
    assert "traffic.sidecar.istio.io/excludeInboundPorts" in response["status"]["message"]
    assert "'http' is not a port" in response["status"]["message"]


def test_a_body_that_is_not_an_admission_review_gets_400_with_a_reason() -> None:
    reply = answer(b'{"apiVersion": "v1", "kind": "Pod"}', VALUES)
    assert reply.status == 400
    assert reply.review is None
    assert "accepted: apiVersion 'admission.k8s.io/v1'" in reply.text


@pytest.mark.parametrize(
    "spec",
    [
        {"securityContext": {"runAsUser": 1337}},
        {
            "containers": [
                {"name": "web", "image": "nginx:1.27", "securityContext": {"runAsUser": 1337}}
            ]
        },
    ],
    ids=["pod-level", "container-level"],
)
def test_an_app_running_as_the_proxys_uid_is_injected_with_a_warning(spec: dict[str, Any]) -> None:
    reply = answer(body(review(pod(**spec))), VALUES)
    assert reply.review is not None and reply.outcome == "injected"
    [warning] = reply.review["response"]["warnings"]
    assert "'web' runs as uid 1337" in warning and "bypasses the sidecar" in warning


def test_a_container_overriding_the_pods_uid_1337_is_not_warned_about() -> None:
    containers = [{"name": "web", "image": "nginx:1.27", "securityContext": {"runAsUser": 1000}}]
    spec = {"securityContext": {"runAsUser": 1337}, "containers": containers}
    reply = answer(body(review(pod(**spec))), VALUES)
    assert reply.review is not None
    assert "warnings" not in reply.review["response"]
