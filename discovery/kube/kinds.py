"""The kinds discovery watches, and how an object of each becomes a typed resource.

Conversion happens here, at the edge: a client object becomes a plain dict, loses what
discovery does not read, and goes through `parse_resource` like a YAML document would.

What is stripped, and why:
- `managedFields`, `uid`, timestamps, owner references: never read.
- `resourceVersion` and `generation`: they change on every write, so keeping them would make
  a Pod whose status heartbeat changed nothing discovery reads look changed, and push config.
  Without them, such an update converts to an equal resource and is no change at all.
- annotations other than Istio's (`*istio.io/*`): `kubectl.kubernetes.io/last-applied-
  configuration` alone repeats the whole object.

Namespaces and Nodes are kept minimal (name and labels, as `Other` resources): nothing in
discovery reads them yet; they are watched so that namespace labels and node localities are
at hand without another list when something does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightkube.core.resource import Resource as ClientResource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Namespace, Node, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from istiolite.api import Resource, parse_resource
from istiolite.api.kinds import ISTIO_GROUP, ISTIO_VERSIONS

Raw = Mapping[str, Any]

_ISTIO_ANNOTATION = "istio.io/"


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str
    # The client classes of the versions to try, newest first: a cluster with older Istio
    # CRDs may serve networking.istio.io/v1beta1 but not v1.
    versions: tuple[type[ClientResource], ...]
    namespaced: bool = True

    def api_version(self, resource: type[ClientResource]) -> str:
        return str(resource._api_info.resource.api_version)


def _istio(kind: str, plural: str) -> Kind:
    return Kind(
        kind,
        tuple(create_namespaced_resource(ISTIO_GROUP, v, kind, plural) for v in ISTIO_VERSIONS),
    )


KINDS = (
    Kind("Service", (Service,)),
    Kind("EndpointSlice", (EndpointSlice,)),
    Kind("Pod", (Pod,)),
    Kind("Node", (Node,), namespaced=False),
    Kind("Namespace", (Namespace,), namespaced=False),
    _istio("VirtualService", "virtualservices"),
    _istio("DestinationRule", "destinationrules"),
    _istio("Sidecar", "sidecars"),
)


def slim(raw: Raw, *, api_version: str, kind: str) -> dict[str, Any]:
    """The object as discovery stores it: type information set, metadata cut to what is read.

    Items of a list response carry no apiVersion and kind, so both are always set here.
    """
    meta = raw.get("metadata") or {}
    kept: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("namespace"):
        kept["namespace"] = meta["namespace"]
    if meta.get("labels"):
        kept["labels"] = meta["labels"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if _kept(k)}
    if annotations:
        kept["annotations"] = annotations
    return {**raw, "apiVersion": api_version, "kind": kind, "metadata": kept}


def _kept(annotation: str) -> bool:
    return _ISTIO_ANNOTATION in annotation


def convert(raw: Raw, *, api_version: str, kind: str) -> Resource:
    """A typed resource, or ValidationError naming the field path."""
    return parse_resource(slim(raw, api_version=api_version, kind=kind))
