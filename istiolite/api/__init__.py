"""Istio's networking API and the Kubernetes objects the mesh reads, as typed frozen models.

Everything that arrives as YAML or from the Kubernetes API is converted here, once, with
validation that names the field path; nothing further in sees raw dicts.
"""

from istiolite.api.errors import FieldError, ValidationError, format_path
from istiolite.api.hosts import DEFAULT_DOMAIN_SUFFIX, resolve_host
from istiolite.api.networking import MESH, resolve_gateway
from istiolite.api.resources import (
    DestinationRule,
    EndpointSlice,
    Gateway,
    ObjectMeta,
    Other,
    Parsed,
    Pod,
    Resource,
    Secret,
    Service,
    ServiceEntry,
    Sidecar,
    VirtualService,
    WorkloadEntry,
    parse_resource,
    parse_yaml,
)

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "MESH",
    "DestinationRule",
    "EndpointSlice",
    "FieldError",
    "Gateway",
    "ObjectMeta",
    "Other",
    "Parsed",
    "Pod",
    "Resource",
    "Secret",
    "Service",
    "ServiceEntry",
    "Sidecar",
    "ValidationError",
    "VirtualService",
    "WorkloadEntry",
    "format_path",
    "parse_resource",
    "parse_yaml",
    "resolve_gateway",
    "resolve_host",
]
