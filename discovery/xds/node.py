"""Who is on a stream: the node id and metadata of an ADS client, checked before anything is
built for it.

Istio's rules (pilot's `ParseServiceNodeWithMetadata`): the id is `TYPE~IP~ID~DOMAIN`, four
parts; TYPE is one of Istio's node types; the addresses are the metadata's `INSTANCE_IPS` when
every one is an IP address, else the id's IP, and there must be one. istiolite also takes a
bare `POD.NAMESPACE` (its own tools and tests connect so), whose addresses come from the
metadata alone. In both forms the ID is `POD.NAMESPACE`: the namespace picks the proxy's config.

A client that breaks a rule gets a NodeError naming the rule; the server closes its stream
with it, since nothing right can be sent to a proxy we cannot place.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from istiolite.api.decode import FrozenDict
from istiolite.discovery.model import Proxy

NODE_TYPES = ("sidecar", "router", "waypoint", "ztunnel")
FORMS = (
    "TYPE~IP~POD.NAMESPACE~DOMAIN "
    "(e.g. sidecar~10.1.0.5~reviews-v1.default~default.svc.cluster.local) or POD.NAMESPACE"
)
MAX_ID = 1024  # a node id is ~100 characters; anything far longer is not one
_POD = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a DNS-1123 subdomain
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label


class NodeError(ValueError):
    """The node of a stream is missing or malformed."""


def parse_node(node_id: str, metadata: Mapping[str, Any]) -> Proxy:
    """The proxy a node id and its metadata describe; NodeError says what is wrong."""
    if not node_id:
        raise NodeError(f"node id is empty; expected {FORMS}")
    if len(node_id) > MAX_ID:
        raise NodeError(
            f"node id is {len(node_id)} characters long (at most {MAX_ID}): {_quote(node_id)}"
        )
    ips = _metadata_ips(metadata)
    if "~" in node_id:
        parts = node_id.split("~")
        if len(parts) != 4:
            raise NodeError(f"node id {_quote(node_id)} has {len(parts)} parts; expected {FORMS}")
        node_type, ip, workload, _domain = parts
        if node_type not in NODE_TYPES:
            raise NodeError(
                f"node id {_quote(node_id)}: type {_quote(node_type)} is not one of "
                f"{', '.join(NODE_TYPES)}"
            )
        if not ips and _is_ip(ip):
            ips = (ip,)
        if not ips:
            raise NodeError(
                f"node id {_quote(node_id)}: no valid IP address in the node id ({_quote(ip)}) "
                "or in the metadata's INSTANCE_IPS"
            )
    else:
        workload = node_id
    pod, namespace = _workload(node_id, workload)
    labels = metadata.get("LABELS") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise NodeError("node metadata LABELS: must be a map of strings")
    return Proxy(
        id=node_id,
        namespace=_text(metadata, "NAMESPACE") or namespace,
        name=_text(metadata, "NAME") or pod,
        ips=ips,
        labels=FrozenDict({str(k): v for k, v in labels.items()}),
        service_account=_text(metadata, "SERVICE_ACCOUNT") or "default",
    )


def _workload(node_id: str, workload: str) -> tuple[str, str]:
    pod, _, namespace = workload.rpartition(".")
    if not pod or not _POD.fullmatch(pod) or not _NAMESPACE.fullmatch(namespace):
        raise NodeError(
            f"node id {_quote(node_id)}: {_quote(workload)} is not POD.NAMESPACE "
            "(a pod name, a dot, a namespace: lowercase letters, digits and '-')"
        )
    return pod, namespace


def _metadata_ips(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """INSTANCE_IPS when every one is an address (Istio's rule), else none."""
    raw = _text(metadata, "INSTANCE_IPS")
    ips = tuple(i.strip() for i in raw.split(",") if i.strip())
    return ips if ips and all(map(_is_ip, ips)) else ()


def _text(metadata: Mapping[str, Any], key: str) -> str:
    value = metadata.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NodeError(f"node metadata {key}: must be a string, got {type(value).__name__}")
    return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _quote(text: str, limit: int = 120) -> str:
    """Client text in an error message: quoted, printable, and short."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
