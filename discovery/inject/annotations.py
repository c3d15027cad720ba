"""Per-pod overrides, read from Istio's annotations so that Istio users' pods work unchanged.

- `sidecar.istio.io/proxyCPU`, `proxyMemory`: the proxy's resource requests (a Kubernetes
  quantity); `proxyCPULimit`, `proxyMemoryLimit`: its limits (a quantity, or "" for none);
- `sidecar.istio.io/logLevel`: Envoy's log level (trace debug info warning error critical off);
- `sidecar.istio.io/nativeSidecar`: native-sidecar mode (true or false);
- `readiness.status.sidecar.istio.io/initialDelaySeconds`, `periodSeconds`,
  `failureThreshold`: the proxy's readiness probe (whole numbers; 0 only for the delay);
- `proxy.istio.io/config`: a ProxyConfig in YAML or JSON, of which
  `holdApplicationUntilProxyStarts` (true or false) is read and other fields are ignored;
- `traffic.sidecar.istio.io/includeInboundPorts`: inbound ports captured (`*`, "" for none,
  or ports);
- `traffic.sidecar.istio.io/excludeInboundPorts`: inbound ports not captured (15020, 15021
  and 15090 never are);
- `traffic.sidecar.istio.io/excludeOutboundPorts`: outbound ports not captured;
- `traffic.sidecar.istio.io/excludeOutboundIPRanges`: destination CIDRs not captured.

Lists are comma-separated. Whether to inject at all (`sidecar.istio.io/inject`) is policy,
decided in mutate.py before any of this is read.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from istiolite.api.yamlstream import YamlError, load_all
from istiolite.discovery.inject.errors import InjectionError
from istiolite.discovery.inject.template import LOG_LEVELS, Capture, SidecarValues

INJECT = "sidecar.istio.io/inject"
STATUS = "sidecar.istio.io/status"
PROXY_CONFIG = "proxy.istio.io/config"
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"

_QUANTITY = re.compile(r"(\d+(\.\d*)?|\.\d+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?\d+)?")

_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})
_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})


def is_false(text: str) -> bool:
    """Istio reads injection switches leniently; so do we."""
    return text.strip().lower() in _FALSE


def pod_overrides(
    values: SidecarValues, annotations: Mapping[str, str]
) -> tuple[SidecarValues, Capture]:
    """The values and capture settings for one pod, its annotations applied over `values`."""
    changes = _parse_all(_VALUE_ANNOTATIONS, annotations)
    if PROXY_CONFIG in annotations:
        changes.update(_proxy_config(annotations[PROXY_CONFIG], _where(PROXY_CONFIG)))
    capture = Capture(**_parse_all(_CAPTURE_ANNOTATIONS, annotations))
    return dataclasses.replace(values, **changes), capture


def _parse_all(
    table: Mapping[str, tuple[str, Callable[[str], Any]]], annotations: Mapping[str, str]
) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for annotation, (field, parse) in table.items():
        if annotation not in annotations:
            continue
        try:
            parsed[field] = parse(annotations[annotation])
        except ValueError as e:
            raise InjectionError(_where(annotation), str(e)) from None
    return parsed


def _where(annotation: str) -> str:
    return f"metadata.annotations[{annotation!r}]"


def _quantity(text: str) -> str:
    if not _QUANTITY.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (like 100m, 0.5, 128Mi, 1G)")
    return text.strip()


def _limit(text: str) -> str:
    return _quantity(text) if text.strip() else ""


def _log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not a log level; accepted: {', '.join(LOG_LEVELS)}")
    return level


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError(f"{text!r} is not a boolean; accepted: true, false")
    return lowered in _TRUE


def _whole(text: str, *, least: int) -> int:
    item = text.strip()
    if not (item.isascii() and item.isdigit() and least <= int(item) <= 2**31 - 1):
        raise ValueError(f"{text!r} is not a whole number of at least {least}")
    return int(item)


def _ports(text: str) -> tuple[int, ...]:
    ports = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if not (item.isascii() and item.isdigit() and 0 < int(item) < 65536):
            raise ValueError(f"{item!r} is not a port; accepted: comma-separated ports 1-65535")
        ports.append(int(item))
    return tuple(ports)


def _include_ports(text: str) -> str:
    text = text.strip()
    return text if text == "*" else ",".join(str(port) for port in _ports(text))


def _cidrs(text: str) -> tuple[str, ...]:
    cidrs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            cidrs.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(
                f"{item!r} is not a CIDR; accepted: comma-separated ranges like 10.0.0.0/8"
            ) from None
    return tuple(cidrs)


def _proxy_config(text: str, where: str) -> dict[str, bool]:
    try:
        documents = load_all(text)
    except YamlError as e:
        raise InjectionError(where, f"is not YAML: {e}") from None
    if len(documents) > 1:
        raise InjectionError(where, "must be one ProxyConfig object, not several YAML documents")
    config = documents[0] if documents else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InjectionError(
            where, "must be a ProxyConfig object, like {holdApplicationUntilProxyStarts: true}"
        )
    hold = config.get("holdApplicationUntilProxyStarts")
    if hold is None:
        return {}
    if not isinstance(hold, bool):
        raise InjectionError(f"{where}.holdApplicationUntilProxyStarts", "must be true or false")
    return {"hold_application_until_proxy_starts": hold}


_VALUE_ANNOTATIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "sidecar.istio.io/proxyCPU": ("proxy_cpu", _quantity),
    "sidecar.istio.io/proxyMemory": ("proxy_memory", _quantity),
    "sidecar.istio.io/proxyCPULimit": ("proxy_cpu_limit", _limit),
    "sidecar.istio.io/proxyMemoryLimit": ("proxy_memory_limit", _limit),
    "sidecar.istio.io/logLevel": ("log_level", _log_level),
    "sidecar.istio.io/nativeSidecar": ("native_sidecar", _bool),
    "readiness.status.sidecar.istio.io/initialDelaySeconds": (
        "readiness_initial_delay_seconds",
        lambda text: _whole(text, least=0),
    ),
    "readiness.status.sidecar.istio.io/periodSeconds": (
        "readiness_period_seconds",
        lambda text: _whole(text, least=1),
    ),
    "readiness.status.sidecar.istio.io/failureThreshold": (
        "readiness_failure_threshold",
        lambda text: _whole(text, least=1),
    ),
}

_CAPTURE_ANNOTATIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "traffic.sidecar.istio.io/includeInboundPorts": ("include_inbound_ports", _include_ports),
    "traffic.sidecar.istio.io/excludeInboundPorts": ("exclude_inbound_ports", _ports),
    "traffic.sidecar.istio.io/excludeOutboundPorts": ("exclude_outbound_ports", _ports),
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": ("exclude_outbound_cidrs", _cidrs),
}
