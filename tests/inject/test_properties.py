"""Properties of the mutation over generated pods, and of the webhook's patch."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from istiolite.discovery.inject import InjectionError, SidecarValues, answer, inject
from tests.inject.reviews import apply_response_patch, body, review
from tests.inject.support import VALUES

Json = dict[str, Any]

PROPERTIES = settings(max_examples=120, deadline=None)

_names = st.text(alphabet="abcdefghijklmnop-", min_size=1, max_size=8).filter(lambda s: s[0] != "-")
_port_numbers = st.integers(min_value=1, max_value=65535)
_port_names = st.sampled_from(["http", "grpc", "admin", "tcp-db", "undeclared"])


@st.composite
def _probes(draw: st.DrawFn) -> Json:
    port = draw(st.one_of(_port_numbers, _port_names))
    path = draw(st.sampled_from(["/", "/ready", "/h?x=1"]))
    headers = [{"name": "A", "value": "b"}]
    handlers: list[Json] = [
        {"httpGet": {"path": path, "port": port}},
        {"httpGet": {"port": port, "scheme": "HTTPS", "httpHeaders": headers}},
        {"tcpSocket": {"port": port}},
        {"grpc": {"port": draw(_port_numbers), "service": draw(_names)}},
        {"exec": {"command": ["true"]}},
    ]
    timing = draw(
        st.dictionaries(
            st.sampled_from(["periodSeconds", "timeoutSeconds", "failureThreshold"]),
            st.integers(min_value=1, max_value=60),
        )
    )
    return {**draw(st.sampled_from(handlers)), **timing}


@st.composite
def _containers(draw: st.DrawFn, name: str) -> Json:
    container: Json = {"name": name, "image": draw(st.sampled_from(["nginx", "busybox:1.36"]))}
    ports = draw(
        st.lists(st.tuples(_port_names, _port_numbers), max_size=3, unique_by=lambda p: p[0])
    )
    if ports:
        container["ports"] = [{"name": n, "containerPort": number} for n, number in ports]
    for field in ("livenessProbe", "readinessProbe", "startupProbe"):
        if draw(st.booleans()):
            container[field] = draw(_probes())
    return container


_ANNOTATIONS = st.dictionaries(
    st.sampled_from(
        [
            "sidecar.istio.io/inject",
            "sidecar.istio.io/nativeSidecar",
            "proxy.istio.io/config",
            "traffic.sidecar.istio.io/excludeInboundPorts",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "sidecar.istio.io/proxyCPU",
            "example.com/owner",
        ]
    ),
    st.sampled_from(["true", "false"]),
    max_size=3,
).map(
    lambda a: {
        key: {
            "proxy.istio.io/config": f"holdApplicationUntilProxyStarts: {value}",
            "traffic.sidecar.istio.io/excludeInboundPorts": "8443,9000",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8",
            "sidecar.istio.io/proxyCPU": "250m",
        }.get(key, value)
        for key, value in a.items()
    }
)


@st.composite
def pods(draw: st.DrawFn) -> Json:
    names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    app_count = draw(st.integers(min_value=1, max_value=len(names)))
    spec: Json = {"containers": [draw(_containers(n)) for n in names[:app_count]]}
    if app_count < len(names):
        spec["initContainers"] = [{"name": n, "image": "busybox"} for n in names[app_count:]]
    if draw(st.booleans()):
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        spec["hostNetwork"] = True
    metadata: Json = {"name": draw(_names), "labels": {"app": draw(_names)}}
    annotations = draw(_ANNOTATIONS)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


_values = st.builds(
    SidecarValues,
    native_sidecar=st.booleans(),
    hold_application_until_proxy_starts=st.booleans(),
)


@PROPERTIES
@given(pods(), _values)
def test_injecting_twice_equals_injecting_once(pod: Json, values: SidecarValues) -> None:
    once = inject(pod, values)
    assert inject(once, values) == once


@PROPERTIES
@given(pods(), _values)
def test_the_webhooks_patch_applied_to_the_pod_equals_the_mutation(
    pod: Json, values: SidecarValues
) -> None:
    reply = answer(body(review(pod)), values)
    assert reply.status == 200
    assert reply.review is not None
    response = reply.review["response"]
    assert response["allowed"] is True
    assert apply_response_patch(copy.deepcopy(pod), response) == inject(pod, values)


@PROPERTIES
@given(pods())
def test_injection_leaves_its_input_alone(pod: Json) -> None:
    before = copy.deepcopy(pod)
    inject(pod, VALUES)
    assert pod == before


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def corrupted_pods(draw: st.DrawFn) -> Any:
    """A generated pod with one field, at any depth, replaced by arbitrary JSON."""
    pod: Any = draw(pods())
    parent: Any = None
    key: Any = None
    node = pod
    while isinstance(node, dict | list) and node and draw(st.integers(0, 5)) < 5:
        parent = node
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        node = node[key]
    garbage = draw(_json)
    if parent is None:
        return garbage
    parent[key] = garbage
    return pod


@settings(max_examples=200, deadline=None)
@given(corrupted_pods())
def test_a_malformed_pod_is_refused_with_an_injection_error_never_a_crash(obj: Any) -> None:
    with contextlib.suppress(InjectionError):
        inject(obj, VALUES)
    reply = answer(body(review(obj)), VALUES)
    assert reply.status == 200
    assert reply.review is not None
    response = reply.review["response"]
    assert response["allowed"] or "internal error" not in response["status"]["message"]
