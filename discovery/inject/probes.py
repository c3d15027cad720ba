"""App probes, rewritten so that the kubelet asks the agent and the agent asks the app.

Why: the kubelet probes from the node, so its probe of an app port enters the pod through
inbound capture and is answered by Envoy's view of that port, not by the app — and fails
outright while Envoy has no config yet. Port 15020 (the agent) is excluded from capture; the
agent probes the app from inside the pod and answers with the app's own result.

Each HTTP, TCP and gRPC probe of an app container becomes an HTTP GET of
`:15020/app-health/<container>/<livez|readyz|startupz>`, keeping its timing fields. Exec
probes run inside the container and need no help; they are left as they are, as is a probe
whose named port the container does not declare (the kubelet could not resolve it either).

The originals reach the agent in the proxy's env var `ISTIO_KUBE_APP_PROBERS` (Istio's name):
a JSON object whose keys are the rewritten paths and whose values are the original probes,
reduced to their handler and timeout, with the port resolved to a number:

    {
      "/app-health/web/livez":    {"httpGet": {"port": 8080, "path": "/healthz", "scheme": "HTTP"},
                                   "timeoutSeconds": 1},
      "/app-health/web/readyz":   {"tcpSocket": {"port": 8080}, "timeoutSeconds": 3},
      "/app-health/api/startupz": {"grpc": {"port": 9090, "service": "ready"}, "timeoutSeconds": 1}
    }

- `httpGet` keeps every field the pod gave it (`path`, `scheme`, `host`, `httpHeaders`);
  `scheme` and `path` may be absent (Kubernetes' defaults: HTTP and `/`).
- `tcpSocket` keeps `port` and `host` if given; `grpc` keeps `port` and `service` if given.
- `timeoutSeconds` is always present (Kubernetes' default, 1, when the pod gave none).
- `host` is there only when the pod set one; without it the kubelet would probe the pod's IP.
"""

from __future__ import annotations

from typing import Any

from istiolite.discovery.inject.errors import InjectionError
from istiolite.discovery.inject.template import STATUS_PORT

Json = dict[str, Any]

PROBE_ENDPOINTS = {"livenessProbe": "livez", "readinessProbe": "readyz", "startupProbe": "startupz"}
REWRITTEN_HANDLERS = ("httpGet", "tcpSocket", "grpc")
_DEFAULT_TIMEOUT_SECONDS = 1
_HTTP_GET_KEPT = ("path", "scheme", "host", "httpHeaders")


def rewrite_probes(containers: list[Json], *, where: str = "spec.containers") -> Json:
    """Point the containers' HTTP/TCP/gRPC probes at the agent, in place; return the originals.

    The caller owns `containers` (a copy); the result is the `ISTIO_KUBE_APP_PROBERS` object.
    """
    probers: Json = {}
    for index, container in enumerate(containers):
        for field, endpoint in PROBE_ENDPOINTS.items():
            probe = container.get(field)
            if probe is None:
                continue
            at = f"{where}[{index}].{field}"
            path = f"/app-health/{container['name']}/{endpoint}"
            original = _original(probe, container, at=at)
            if original is not None:
                probers[path] = original
                container[field] = _rewritten(probe, path)
    return probers


def _original(probe: object, container: Json, *, at: str) -> Json | None:
    """The probe as the agent will run it, or None when it stays with the kubelet."""
    if not isinstance(probe, dict):
        raise InjectionError(at, f"a probe must be an object, not {type(probe).__name__}")
    handler_name = next((name for name in REWRITTEN_HANDLERS if name in probe), None)
    if handler_name is None:
        return None
    handler = probe[handler_name]
    if not isinstance(handler, dict):
        raise InjectionError(f"{at}.{handler_name}", "must be an object")
    port = _resolve_port(handler.get("port"), container, at=f"{at}.{handler_name}.port")
    if port is None:
        return None
    kept = {"httpGet": _HTTP_GET_KEPT, "tcpSocket": ("host",), "grpc": ("service",)}[handler_name]
    original = {"port": port} | {key: handler[key] for key in kept if key in handler}
    timeout = probe.get("timeoutSeconds", _DEFAULT_TIMEOUT_SECONDS)
    return {handler_name: original, "timeoutSeconds": timeout}


def _rewritten(probe: Json, path: str) -> Json:
    """The probe with its handler swapped for a GET of the agent; timing fields stay in place."""
    agent = {"path": path, "port": STATUS_PORT, "scheme": "HTTP"}
    rewritten: Json = {}
    for key, value in probe.items():
        if key in REWRITTEN_HANDLERS:
            rewritten.setdefault("httpGet", agent)
        else:
            rewritten[key] = value
    return rewritten


def _resolve_port(port: object, container: Json, *, at: str) -> int | None:
    """A probe's port as a number: named ports are looked up in the container's ports."""
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise InjectionError(at, "must be a port number or the name of a container port")
    if isinstance(port, int):
        return port
    if port.isascii() and port.isdigit():
        return int(port)
    for declared in container.get("ports") or ():
        if declared.get("name") == port and isinstance(declared.get("containerPort"), int):
            return int(declared["containerPort"])
    return None
