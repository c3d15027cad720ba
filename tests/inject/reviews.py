"""AdmissionReviews for tests: realistic ones and a catalogue of malformed ones."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch

Json = dict[str, Any]
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}


def pod(**spec: Any) -> Json:
    """A small pod with one container and an HTTP probe on a named port."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                }
            ],
            **spec,
        },
    }


def review(obj: object, *, uid: str = "7d3f0e0a-1", kind: Json = POD_KIND, **request: Any) -> Json:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": kind,
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "object": obj,
            **request,
        },
    }


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def apply_response_patch(original: Json, response: Json) -> Json:
    """What the kube-apiserver does with an allowed response's patch."""
    if "patch" not in response:
        return original
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(original, operations)  # type: ignore[no-any-return]


def _with_annotations(annotations: object) -> Json:
    p = pod()
    p["metadata"]["annotations"] = annotations
    return p


def _with_container(container: object) -> Json:
    p = pod()
    p["spec"]["containers"] = [container]
    return p


def _with_probe(probe: object) -> Json:
    p = pod()
    p["spec"]["containers"][0]["readinessProbe"] = probe
    return p


_valid = review(pod())
_request: Json = _valid["request"]

# (name, body): each must get a 4xx, or a denial that says what was wrong.
MALFORMED: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("truncated JSON", body(_valid)[:-7]),
    ("not UTF-8", b'{"apiVersion": "\xff\xfe"}'),
    ("JSON array", b"[1, 2, 3]"),
    ("JSON string", b'"AdmissionReview"'),
    ("JSON null", b"null"),
    ("NaN is not JSON", body(_valid).replace(b'"7d3f0e0a-1"', b"NaN")),
    ("nesting too deep to parse", b"[" * 100_000 + b"]" * 100_000),
    (
        "pod nested too deep to copy",
        body(_valid).replace(b'"image"', b'"args": ' + b"[" * 600 + b"]" * 600 + b', "image"'),
    ),
    ("no apiVersion", body({k: v for k, v in _valid.items() if k != "apiVersion"})),
    ("apiVersion v1beta1", body({**_valid, "apiVersion": "admission.k8s.io/v1beta1"})),
    ("kind is not AdmissionReview", body({**_valid, "kind": "Pod"})),
    ("no request", body({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})),
    ("request is a list", body({**_valid, "request": [_request]})),
    ("no uid", body({**_valid, "request": {k: v for k, v in _request.items() if k != "uid"}})),
    ("uid is a number", body(review(pod(), uid=123))),  # type: ignore[arg-type]
    ("uid is empty", body(review(pod(), uid=""))),
    ("request.kind is a string", body({**_valid, "request": {**_request, "kind": "Pod"}})),
    ("operation is a number", body(review(pod(), operation=1))),
    ("pod object missing", body({**_valid, "request": {**_request, "object": None}})),
    ("pod object is a string", body(review("apiVersion: v1\nkind: Pod"))),
    ("pod without spec", body(review({"apiVersion": "v1", "kind": "Pod", "metadata": {}}))),
    ("containers not a list", body(review(pod(containers={"name": "web"})))),
    ("no containers", body(review(pod(containers=[])))),
    ("container without a name", body(review(_with_container({"image": "nginx"})))),
    ("container is a string", body(review(_with_container("nginx")))),
    ("ports not a list", body(review(_with_container({"name": "a", "ports": 80})))),
    ("annotations not an object", body(review(_with_annotations(["a=b"])))),
    ("annotation value a number", body(review(_with_annotations({"x": 1})))),
    ("hostNetwork a string", body(review(pod(hostNetwork="yes")))),
    ("probe not an object", body(review(_with_probe("GET /ready")))),
    ("probe port a list", body(review(_with_probe({"tcpSocket": {"port": [80]}})))),
    ("probe handler a list", body(review(_with_probe({"httpGet": ["/ready"]})))),
    (
        "excludeInboundPorts not ports",
        body(review(_with_annotations({"traffic.sidecar.istio.io/excludeInboundPorts": "http"}))),
    ),
    (
        "excludeOutboundPorts out of range",
        body(review(_with_annotations({"traffic.sidecar.istio.io/excludeOutboundPorts": "70000"}))),
    ),
    (
        "excludeOutboundIPRanges not CIDRs",
        body(
            review(_with_annotations({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10/33"}))
        ),
    ),
    (
        "proxy config not YAML",
        body(review(_with_annotations({"proxy.istio.io/config": "{holdApplication: [}"}))),
    ),
    (
        "holdApplicationUntilProxyStarts not a boolean",
        body(
            review(
                _with_annotations(
                    {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: please"}
                )
            )
        ),
    ),
    (
        "proxyCPU not a quantity",
        body(review(_with_annotations({"sidecar.istio.io/proxyCPU": "lots"}))),
    ),
    ("logLevel unknown", body(review(_with_annotations({"sidecar.istio.io/logLevel": "chatty"})))),
]
