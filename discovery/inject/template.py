"""The sidecar template: the containers and volumes injection adds, as a function of values.

`SidecarValues` are the mesh-wide settings (the installer's, or `istiolite kube-inject`'s
flags); `Capture` is what the pod's `traffic.sidecar.istio.io/*` annotations ask of traffic
capture. Both are plain data; everything here builds fresh dicts and touches nothing else.

What the proxy container gets, and why:
- args `proxy sidecar --discovery-address ... --log-level ...` for the image's entrypoint,
  `pilot-agent` (Istio's proxy image has the same convention);
- env from the downward API: POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT, plus
  ISTIO_META_CLUSTER_ID, and ISTIO_KUBE_APP_PROBERS when app probes were rewritten (probes.py);
- the pod's labels as the downward-API file `/etc/istio/pod/labels` (volume `istio-podinfo`),
  not as env: the file follows label changes, and the agent re-renders its bootstrap from it;
- writable in-memory `/etc/istio/proxy` for the bootstrap and `/var/lib/istio/data` for Envoy,
  because the root filesystem is read-only;
- uid/gid 1337, whose traffic the iptables rules never capture (so Envoy's own does not loop).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from istiolite import __version__

Json = dict[str, Any]

PROXY_NAME = "istio-proxy"
INIT_NAME = "istio-init"
STATUS_PORT = 15020
HEALTH_PORT = 15021
PROMETHEUS_PORT = 15090
# Never captured on the way in: the kubelet's probes and Prometheus must reach the agent and
# Envoy themselves, not be redirected into Envoy's inbound listener.
PROXY_INBOUND_PORTS = (STATUS_PORT, HEALTH_PORT, PROMETHEUS_PORT)
APP_PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"
VOLUMES = ("istio-envoy", "istio-data", "istio-podinfo")
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")


@dataclass(frozen=True, slots=True)
class SidecarValues:
    """Mesh-wide injection settings; some can be overridden per pod by annotations."""

    proxy_image: str = f"istiolite/proxy:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    discovery_address: str = "istiod.istio-system.svc:15010"
    cluster_id: str = "Kubernetes"
    proxy_uid: int = 1337
    log_level: str = "warning"
    proxy_cpu: str = "100m"
    proxy_memory: str = "128Mi"
    # An empty limit means none.
    proxy_cpu_limit: str = "2000m"
    proxy_memory_limit: str = "1Gi"
    hold_application_until_proxy_starts: bool = False
    native_sidecar: bool = False
    # The kubelet's readiness probe of the proxy (Istio's defaults): a failing Envoy takes the
    # pod out of its Services after failureThreshold periods.
    readiness_initial_delay_seconds: int = 0
    readiness_period_seconds: int = 15
    readiness_failure_threshold: int = 4


@dataclass(frozen=True, slots=True)
class Capture:
    """Which traffic `pilot-agent iptables` redirects through Envoy, beyond its defaults."""

    # None: the agent's default, every inbound port; "*" the same, said explicitly; "" none.
    include_inbound_ports: str | None = None
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()


def init_container(values: SidecarValues, capture: Capture) -> Json:
    """`istio-init`: sets up the pod's iptables capture, then exits."""
    excluded = dict.fromkeys((*PROXY_INBOUND_PORTS, *capture.exclude_inbound_ports))
    args = ["iptables", "--proxy-uid", str(values.proxy_uid)]
    args += ["--exclude-inbound-ports", _join(excluded)]
    if capture.include_inbound_ports is not None:
        args += ["--include-inbound-ports", capture.include_inbound_ports]
    if capture.exclude_outbound_ports:
        args += ["--exclude-outbound-ports", _join(capture.exclude_outbound_ports)]
    if capture.exclude_outbound_cidrs:
        args += ["--exclude-outbound-cidrs", _join(capture.exclude_outbound_cidrs)]
    return {
        "name": INIT_NAME,
        "image": values.proxy_image,
        "imagePullPolicy": values.image_pull_policy,
        "args": args,
        "resources": _resources(values),
        # Root with NET_ADMIN and NET_RAW is what iptables needs, and all it gets. runAsNonRoot
        # is set explicitly so a pod-level `runAsNonRoot: true` does not block this container.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }


def proxy_container(values: SidecarValues, *, app_probers: Json) -> Json:
    """`istio-proxy`: the agent and its Envoy. `app_probers`: see probes.py."""
    container: Json = {
        "name": PROXY_NAME,
        "image": values.proxy_image,
        "imagePullPolicy": values.image_pull_policy,
        "args": [
            *("proxy", "sidecar"),
            *("--discovery-address", values.discovery_address),
            *("--log-level", values.log_level),
        ],
        "env": _env(values, app_probers),
        "ports": [{"containerPort": PROMETHEUS_PORT, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": _ready_probe(
            **({"initialDelaySeconds": d} if (d := values.readiness_initial_delay_seconds) else {}),
            periodSeconds=values.readiness_period_seconds,
            failureThreshold=values.readiness_failure_threshold,
        ),
        # Frequent at first so a ready proxy is noticed within a second (in native-sidecar
        # mode the app containers wait for it), then the readiness probe takes over.
        "startupProbe": _ready_probe(periodSeconds=1, failureThreshold=600),
        "resources": _resources(values),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": values.proxy_uid,
            "runAsNonRoot": True,
            "runAsUser": values.proxy_uid,
        },
        "volumeMounts": [
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
    }
    if values.native_sidecar:
        # A restartable init container: started before the app, stopped after it, and not
        # counted when deciding whether a Job's pod has finished.
        container["restartPolicy"] = "Always"
    elif values.hold_application_until_proxy_starts:
        # The kubelet starts the next container only when postStart returns.
        container["lifecycle"] = {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}}}
    return container


def volumes() -> list[Json]:
    return [
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {
            "name": "istio-podinfo",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
    ]


def _env(values: SidecarValues, app_probers: Json) -> list[Json]:
    env = [
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("INSTANCE_IP", "status.podIP"),
        _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        {"name": "ISTIO_META_CLUSTER_ID", "value": values.cluster_id},
    ]
    if app_probers:
        env.append(
            {"name": APP_PROBERS_ENV, "value": json.dumps(app_probers, separators=(",", ":"))}
        )
    return env


def _field_env(name: str, field_path: str) -> Json:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _ready_probe(**timing: int) -> Json:
    return {
        "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT},
        **timing,
        "timeoutSeconds": 3,
    }


def _resources(values: SidecarValues) -> Json:
    resources: Json = {"requests": {"cpu": values.proxy_cpu, "memory": values.proxy_memory}}
    limits = {"cpu": values.proxy_cpu_limit, "memory": values.proxy_memory_limit}
    if any(limits.values()):
        resources["limits"] = {name: limit for name, limit in limits.items() if limit}
    return resources


def _join(items: Iterable[object]) -> str:
    return ",".join(str(item) for item in items)
