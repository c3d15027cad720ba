"""Which kinds istiolite reads, and which documents of other kinds are mistakes, not noise.

A directory given to pilot-discovery, or to `istiolite analyze`, holds whole applications as
`kubectl apply` users write them: Deployments, ConfigMaps and RBAC beside the mesh's own
resources. Those kinds are none of the mesh's business and are ignored. Three kinds of
document are errors instead, because ignoring them would leave the user believing that
configuration is in force when it is not:

- a kind of an Istio or Kubernetes networking group that istiolite does not implement (an
  `EnvoyFilter`, an `AuthorizationPolicy`, a `NetworkPolicy`, Gateway API's `HTTPRoute`);
- a kind spelt nearly like a supported one (`DestinatonRule`, `Servce`, `virtualservice`);
- a supported kind under another of Kubernetes' or Istio's own groups (`v1 VirtualService`).

A kind of the same name in some other project's group (Knative's `serving.knative.dev`
Service) is that project's, and ignored like any other.
"""

from __future__ import annotations

import difflib

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")

# kind -> (group, versions). The core group is "".
SUPPORTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "VirtualService": (ISTIO_GROUP, ISTIO_VERSIONS),
    "DestinationRule": (ISTIO_GROUP, ISTIO_VERSIONS),
    "Sidecar": (ISTIO_GROUP, ISTIO_VERSIONS),
    "WorkloadEntry": (ISTIO_GROUP, ISTIO_VERSIONS),
    "Gateway": (ISTIO_GROUP, ISTIO_VERSIONS),
    "ServiceEntry": (ISTIO_GROUP, ISTIO_VERSIONS),
    "Service": ("", ("v1",)),
    "Pod": ("", ("v1",)),
    # Read for gateways' TLS credentials (kubernetes.io/tls, or Istio's generic form).
    "Secret": ("", ("v1",)),
    "EndpointSlice": ("discovery.k8s.io", ("v1",)),
}

# Groups whose every kind shapes traffic or its security: one istiolite does not implement
# must not pass for working configuration. Istio's own groups all match `*.istio.io`.
MESH_GROUPS = frozenset({"networking.k8s.io", "gateway.networking.k8s.io"})

# How alike a kind must be to a supported one to be taken for a misspelling of it
# (difflib's ratio, as for misspelt field names). At 0.8 `Servce`, `Pods` and `Sidcar` are
# caught while Kubernetes' `Endpoints` (0.73 to EndpointSlice) and `Node` (0.57 to Pod) are not.
_CLOSE = 0.8


def api_versions(kind: str) -> list[str]:
    """`["networking.istio.io/v1", ...]`: every apiVersion a supported kind is read in."""
    group, versions = SUPPORTED[kind]
    return [f"{group}/{v}" if group else v for v in versions]


def supported_kinds() -> str:
    """`VirtualService, ... (networking.istio.io/v1); Service, Pod (v1); ...` for messages."""
    by_version: dict[str, list[str]] = {}
    for kind in SUPPORTED:
        by_version.setdefault(api_versions(kind)[0], []).append(kind)
    return "; ".join(f"{', '.join(kinds)} ({version})" for version, kinds in by_version.items())


def kind_problem(api_version: str, kind: str) -> tuple[str, str] | None:
    """(field, message) when a document's type is a mistake; None when it is read or ignored."""
    group, _, version = api_version.rpartition("/")
    if kind in SUPPORTED:
        home, versions = SUPPORTED[kind]
        if group == home and version in versions:
            return None
        if group in MESH_GROUPS:
            # Another API's kind of the same name (Gateway API's Gateway), not a misplaced one.
            return "kind", (
                f"{group} kind {kind!r} is not supported by istiolite (it would have no "
                f"effect); istiolite reads {kind} as {api_versions(kind)[0]}"
            )
        if group == home or _ours(group):
            accepted = ", ".join(api_versions(kind))
            return "apiVersion", f"must be one of {accepted}, got {api_version!r}"
        return None
    if _ours(group) and (near := _misspelt(kind)):
        return "kind", (
            f"unknown kind {kind!r} (did you mean {near!r}?); supported: {supported_kinds()}"
        )
    if _mesh(group):
        return "kind", (
            f"{group} kind {kind!r} is not supported by istiolite (it would have no effect); "
            f"supported: {supported_kinds()}"
        )
    return None


def _ours(group: str) -> bool:
    """Kubernetes' and Istio's own groups: a project's CRD group always has a dot in it."""
    return "." not in group or group.endswith((".k8s.io", ".istio.io"))


def _mesh(group: str) -> bool:
    return group in MESH_GROUPS or group == "istio.io" or group.endswith(".istio.io")


def _misspelt(kind: str) -> str | None:
    by_lower = {k.lower(): k for k in SUPPORTED}
    if kind.lower() in by_lower:
        return by_lower[kind.lower()]
    found = difflib.get_close_matches(kind, list(SUPPORTED), n=1, cutoff=_CLOSE)
    return found[0] if found else None
