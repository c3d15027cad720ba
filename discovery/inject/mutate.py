"""The mutation: a pod spec in, the same pod with its sidecar out. Pure; the input is not changed.

Where the sidecar goes, by mode:
- default: `istio-init` after the pod's own init containers (which therefore run before
  capture and reach the network directly), `istio-proxy` after the app containers;
- hold (`holdApplicationUntilProxyStarts`): `istio-proxy` first, with a postStart hook
  `pilot-agent wait`, so the app starts only once the proxy can carry its traffic;
- native sidecar: `istio-init` then `istio-proxy` (`restartPolicy: Always`) before the pod's
  own init containers, which then already have the mesh. The kubelet waits for the proxy's
  startup probe before starting the next container, so holding is built in, and the proxy does
  not keep a Job's pod running after the Job's containers finish. Needs Kubernetes 1.29+.

Injection records what it added in the `sidecar.istio.io/status` annotation (Istio's). A pod
that has it, or already has an `istio-proxy` container, is left alone: injecting twice equals
injecting once, and `kube-inject` output can safely go through the webhook too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from istiolite.discovery.inject.annotations import (
    DEFAULT_CONTAINER,
    INJECT,
    STATUS,
    is_false,
    pod_overrides,
)
from istiolite.discovery.inject.errors import InjectionError
from istiolite.discovery.inject.probes import rewrite_probes
from istiolite.discovery.inject.template import (
    INIT_NAME,
    PROXY_NAME,
    VOLUMES,
    SidecarValues,
    init_container,
    proxy_container,
    volumes,
)

Json = dict[str, Any]
MAX_NESTING = 100


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a pod gets a sidecar; `reason` says why not, for the webhook's log."""

    inject: bool
    reason: str


def should_inject(pod: object) -> Decision:
    """The injection policy. Raises InjectionError for a pod whose fields cannot be read."""
    checked = check_pod_shape(pod)
    spec = checked["spec"]
    metadata = checked.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    if spec.get("hostNetwork"):
        return Decision(False, "the pod uses the node's network; capture would take the node's")
    # As in Istio, the label wins over the annotation of the same name.
    switch = labels.get(INJECT, annotations.get(INJECT))
    if switch is not None and is_false(switch):
        return Decision(False, f"the pod opts out with {INJECT}: {switch!r}")
    if STATUS in annotations:
        return Decision(False, f"already injected ({STATUS} is set)")
    if any(c["name"] == PROXY_NAME for c in _all_containers(spec)):
        return Decision(False, f"the pod already has an {PROXY_NAME} container")
    return Decision(True, "")


def inject(pod: object, values: SidecarValues) -> Json:
    """A copy of `pod` with the sidecar added, or an unchanged copy when policy says no.

    `pod` is JSON-like data from outside, so its shape is checked first: InjectionError says
    which field of the pod, or of its annotations, could not be read.
    """
    decision = should_inject(pod)
    result: Json = _copy(check_pod_shape(pod))
    if not decision.inject:
        return result
    metadata = result["metadata"] = result.get("metadata") or {}
    annotations = metadata["annotations"] = metadata.get("annotations") or {}
    values, capture = pod_overrides(values, annotations)
    spec = result["spec"]
    app_containers = spec["containers"]
    own_init = spec.get("initContainers") or []
    probers = rewrite_probes(app_containers)
    init = init_container(values, capture)
    proxy = proxy_container(values, app_probers=probers)
    if values.native_sidecar:
        spec["initContainers"] = [init, proxy, *own_init]
    else:
        spec["initContainers"] = [*own_init, init]
        hold = values.hold_application_until_proxy_starts
        spec["containers"] = [proxy, *app_containers] if hold else [*app_containers, proxy]
    spec["volumes"] = [*(spec.get("volumes") or []), *volumes()]
    annotations.setdefault(DEFAULT_CONTAINER, app_containers[0]["name"])
    annotations[STATUS] = _status(values)
    return result


def bypass_warnings(pod: Json, values: SidecarValues) -> list[str]:
    """App containers set to run as the proxy's uid: the capture rules let that uid's traffic
    past Envoy (so Envoy's own does not loop), so theirs would silently skip the mesh."""
    spec = pod.get("spec") or {}
    pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
    warnings = []
    for container in _all_containers(spec):
        if container["name"] in (PROXY_NAME, INIT_NAME):
            continue
        uid = (container.get("securityContext") or {}).get("runAsUser", pod_uid)
        if uid == values.proxy_uid:
            warnings.append(
                f"container {container['name']!r} runs as uid {uid}, the proxy's: its traffic "
                "bypasses the sidecar; run it as another uid"
            )
    return warnings


def check_pod_shape(pod: object) -> Json:
    """`pod`, once every field that injection reads has the expected type; else InjectionError."""
    if not isinstance(pod, dict):
        raise InjectionError("pod", f"must be an object, not {_kind(pod)}")
    if pod.get("metadata") is not None:
        metadata = _object(pod["metadata"], "metadata")
        for field in ("labels", "annotations"):
            _expect_string_map(metadata.get(field), f"metadata.{field}")
    spec = _object(pod.get("spec"), "spec")
    if not isinstance(spec.get("hostNetwork", False), bool | None):
        raise InjectionError("spec.hostNetwork", "must be true or false")
    if not spec.get("containers"):
        raise InjectionError("spec.containers", "must list at least one container")
    for field in ("containers", "initContainers"):
        _expect_containers(spec.get(field), f"spec.{field}")
    if not isinstance(spec.get("volumes") or [], list):
        raise InjectionError("spec.volumes", f"must be a list, not {_kind(spec['volumes'])}")
    return pod


def _expect_containers(containers: object, where: str) -> None:
    if containers is None:
        return
    if not isinstance(containers, list):
        raise InjectionError(where, f"must be a list of containers, not {_kind(containers)}")
    for index, item in enumerate(containers):
        container = _object(item, f"{where}[{index}]")
        name = container.get("name")
        if not isinstance(name, str) or not name:
            raise InjectionError(f"{where}[{index}].name", "must be a non-empty string")
        ports = container.get("ports") or []
        if not isinstance(ports, list) or not all(isinstance(p, dict) for p in ports):
            raise InjectionError(f"{where}[{index}].ports", "must be a list of objects")


def _object(value: object, where: str) -> Json:
    if not isinstance(value, dict):
        raise InjectionError(where, f"must be an object, not {_kind(value)}")
    return value


def _expect_string_map(value: object, where: str) -> None:
    if value is None:
        return
    for key, item in _object(value, where).items():
        if not isinstance(item, str):
            raise InjectionError(f"{where}[{key!r}]", f"must be a string, not {_kind(item)}")


def _copy(value: Any, depth: int = 0) -> Any:
    """A copy of JSON-like data: a third of `copy.deepcopy`'s cost, and bounded recursion.

    Real pods nest about a dozen levels. Copying here and diffing in the webhook both recurse,
    so a pod nested absurdly deep is refused rather than allowed to exhaust the stack.
    """
    if depth > MAX_NESTING:
        raise InjectionError("pod", f"nests deeper than {MAX_NESTING} levels; no real pod does")
    if isinstance(value, dict):
        return {key: _copy(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item, depth + 1) for item in value]
    return value


def _all_containers(spec: Json) -> list[Json]:
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def _status(values: SidecarValues) -> str:
    """What injection added, in Istio's format, so tools and a second injection can see it."""
    in_init = [INIT_NAME, PROXY_NAME] if values.native_sidecar else [INIT_NAME]
    status = {
        "initContainers": in_init,
        "containers": [] if values.native_sidecar else [PROXY_NAME],
        "volumes": list(VOLUMES),
        "revision": "default",
    }
    return json.dumps(status, separators=(",", ":"))


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
