"""Whole resources as they arrive from YAML files or the Kubernetes API, as typed models.

Istio's resources (VirtualService, DestinationRule, WorkloadEntry, Sidecar, Gateway,
ServiceEntry) are validated strictly: users write them by hand. Kubernetes' own objects
(Service, EndpointSlice, Pod) were already validated by the API server, so only the fields the
mesh needs are read, and the rest is dropped here at the edge, never carried inward. Secrets
are the exception: a gateway's TLS credential is checked as Envoy will read it (secrets.py),
since the API server takes any bytes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from istiolite.api import checks, secrets
from istiolite.api.decode import INVALID, Decoder, FrozenDict, describe, model
from istiolite.api.errors import FieldError, MapKey, Path, ValidationError
from istiolite.api.gateway import GatewaySpec
from istiolite.api.kinds import ISTIO_GROUP, kind_problem
from istiolite.api.networking import (
    MESH,
    DestinationRuleSpec,
    SidecarSpec,
    VirtualServiceSpec,
    WorkloadEntrySpec,
)
from istiolite.api.serviceentry import ServiceEntrySpec
from istiolite.api.yamlstream import YamlError, load_all

T = TypeVar("T")

DEFAULT_NAMESPACE = "default"


@model
class ObjectMeta:
    name: str
    namespace: str = DEFAULT_NAMESPACE
    labels: FrozenDict[str, str] = FrozenDict()
    annotations: FrozenDict[str, str] = FrozenDict()
    resource_version: str = ""
    generation: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@model
class VirtualService:
    """A VirtualService; every gateway name in its spec is `mesh` or `namespace/name`."""

    KIND: ClassVar[str] = "VirtualService"
    meta: ObjectMeta
    spec: VirtualServiceSpec

    @property
    def mesh(self) -> bool:
        """Sidecars use it (no `gateways`, or `mesh` among them)."""
        return self.spec.applies_to_mesh

    @property
    def gateways(self) -> tuple[str, ...]:
        """The Gateways it is bound to, as `namespace/name`; `mesh` left out."""
        return tuple(g for g in self.spec.gateways if g != MESH)

    def binds(self, gateway: str) -> bool:
        """Whether it is bound to `gateway`: `mesh` or a Gateway's `namespace/name`."""
        return self.mesh if gateway == MESH else gateway in self.spec.gateways


@model
class DestinationRule:
    KIND: ClassVar[str] = "DestinationRule"
    meta: ObjectMeta
    spec: DestinationRuleSpec


@model
class WorkloadEntry:
    KIND: ClassVar[str] = "WorkloadEntry"
    meta: ObjectMeta
    spec: WorkloadEntrySpec


@model
class Sidecar:
    KIND: ClassVar[str] = "Sidecar"
    meta: ObjectMeta
    spec: SidecarSpec


@model
class Gateway:
    KIND: ClassVar[str] = "Gateway"
    meta: ObjectMeta
    spec: GatewaySpec

    @property
    def ref(self) -> str:
        """`namespace/name`, as a VirtualService's `gateways` names it once resolved."""
        return self.meta.key


@model
class ServiceEntry:
    KIND: ClassVar[str] = "ServiceEntry"
    meta: ObjectMeta
    spec: ServiceEntrySpec

    def service_ports(self) -> tuple[ServicePort, ...]:
        """Its ports as a Service's, so they are routed alike (a port without a protocol is
        TCP, as a Service port without a protocol name is)."""
        return tuple(
            ServicePort(
                name=p.name,
                port=p.number,
                target_port=p.target_port or None,
                protocol=Protocol(p.effective_protocol.value),
            )
            for p in self.spec.ports
        )


@model
class Secret:
    """A Secret holding a TLS credential (secrets.py), checked; other Secrets are `Other`.

    Each part is PEM, as Envoy takes it: the certificate chain (leaf first) and its key, or
    neither (a Secret of CA certificates only, such as `<credentialName>-cacert`), and the CA
    certificates that sign client certificates, if any.
    """

    KIND: ClassVar[str] = "Secret"
    meta: ObjectMeta
    type: str
    certificate_chain: bytes | None
    private_key: bytes | None
    ca_certificates: bytes | None

    @property
    def has_certificate(self) -> bool:
        return self.certificate_chain is not None and self.private_key is not None


class Protocol(enum.StrEnum):
    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    TLS = "TLS"
    HTTPS = "HTTPS"
    UDP = "UDP"

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC)


_PROTOCOL_PREFIXES = {
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "h2c": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.HTTP,
    "tcp": Protocol.TCP,
    "tls": Protocol.TLS,
    "https": Protocol.HTTPS,
}


def port_protocol(*, name: str, app_protocol: str | None, l4: str) -> Protocol:
    """Istio's rule: appProtocol wins, then the port name's prefix (`http-web`), else TCP.

    Istio sniffs unnamed ports; istiolite treats them as TCP (documented in docs/api.md), which
    is always safe: the traffic is proxied, just without HTTP routing.
    """
    if l4 == "UDP":
        return Protocol.UDP
    for candidate in (app_protocol, name.split("-", 1)[0] if name else None):
        if candidate:
            found = _PROTOCOL_PREFIXES.get(candidate.lower().removeprefix("kubernetes.io/"))
            if found:
                return found
    return Protocol.TCP


@model
class ServicePort:
    name: str
    port: int
    target_port: int | str | None
    protocol: Protocol


@model
class Service:
    KIND: ClassVar[str] = "Service"
    meta: ObjectMeta
    cluster_ip: str | None  # None for headless services
    ports: tuple[ServicePort, ...]
    selector: FrozenDict[str, str]

    def hostname(self, domain_suffix: str = "cluster.local") -> str:
        return f"{self.meta.name}.{self.meta.namespace}.svc.{domain_suffix}"


@model
class EndpointPort:
    name: str
    port: int
    protocol: str


@model
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool
    serving: bool
    terminating: bool
    pod: str | None
    node_name: str | None
    zone: str | None


@model
class EndpointSlice:
    KIND: ClassVar[str] = "EndpointSlice"
    meta: ObjectMeta
    service: str | None  # from the kubernetes.io/service-name label
    address_type: str
    endpoints: tuple[Endpoint, ...]
    ports: tuple[EndpointPort, ...]


@model
class Pod:
    KIND: ClassVar[str] = "Pod"
    meta: ObjectMeta
    ip: str | None
    node_name: str | None
    service_account: str
    phase: str
    ready: bool
    host_network: bool


@model
class Other:
    """A kind the mesh does not read (Deployment, ConfigMap, ...); kept so tools can list it.

    For kinds that make pods (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob),
    `pod_labels` are their pods' labels, as the pod template gives them: `analyze` finds the
    workloads a Gateway selects among them.
    """

    api_version: str
    kind: str
    meta: ObjectMeta
    pod_labels: FrozenDict[str, str] | None = None

    @property
    def KIND(self) -> str:
        return self.kind


Resource = (
    VirtualService
    | DestinationRule
    | WorkloadEntry
    | Sidecar
    | Gateway
    | ServiceEntry
    | Secret
    | Service
    | EndpointSlice
    | Pod
    | Other
)


class _View:
    """Typed, path-tracking reads from a loosely-typed Kubernetes object."""

    def __init__(self, decoder: Decoder, value: Any, path: Path) -> None:
        self.d, self.path = decoder, path
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            decoder.fail(path, f"must be a map, got {describe(value)}")
            value = {}
        self.value: Mapping[Any, Any] = value

    def get(self, key: str, hint: type[T] | Any, default: T) -> T:
        raw = self.value.get(key)
        if raw is None:
            return default
        decoded = self.d.decode(hint, raw, (*self.path, key))
        return default if decoded is INVALID else typing.cast(T, decoded)

    def view(self, key: str) -> _View:
        return _View(self.d, self.value.get(key), (*self.path, key))

    def views(self, key: str) -> Iterator[_View]:
        raw = self.value.get(key) or []
        if not isinstance(raw, list):
            self.d.fail((*self.path, key), f"must be a list, got {describe(raw)}")
            return
        for i, item in enumerate(raw):
            yield _View(self.d, item, (*self.path, key, i))


def _meta(doc: _View) -> ObjectMeta:
    m = doc.view("metadata")
    name = m.get("name", str, "")
    if not name:
        doc.d.fail((*m.path, "name"), "required")
    elif problem := checks.dns_subdomain(name):
        doc.d.fail((*m.path, "name"), problem)
    namespace = m.get("namespace", str, DEFAULT_NAMESPACE)
    if problem := checks.dns_label(namespace):
        doc.d.fail((*m.path, "namespace"), problem)
    return ObjectMeta(
        name=name,
        namespace=namespace,
        labels=m.get("labels", FrozenDict[str, str], FrozenDict()),
        annotations=m.get("annotations", FrozenDict[str, str], FrozenDict()),
        resource_version=m.get("resourceVersion", str, ""),
        generation=m.get("generation", int, 0),
    )


def _istio(kind: str, doc: _View, meta: ObjectMeta) -> Resource:
    raw, at = doc.value.get("spec"), ("spec",)
    if raw is None:
        doc.d.fail(at, "required")
    if kind == "VirtualService":
        vs = doc.d.decode_object(VirtualServiceSpec, raw, at)
        if _check_in(doc.d, vs, meta.namespace):
            vs = vs.resolved(meta.namespace)
        return VirtualService(meta=meta, spec=vs)
    if kind == "DestinationRule":
        dr = doc.d.decode_object(DestinationRuleSpec, raw, at)
        _check_in(doc.d, dr, meta.namespace)
        return DestinationRule(meta=meta, spec=dr)
    if kind == "Sidecar":
        return Sidecar(meta=meta, spec=doc.d.decode_object(SidecarSpec, raw, at))
    if kind == "Gateway":
        if problem := checks.dns_label(meta.name):
            # VirtualServices name Gateways as `namespace/name` and, in Istio's legacy form,
            # `name.namespace`: a dot in the name would be read as the namespace.
            doc.d.fail(("metadata", "name"), f"a Gateway's name has no dots: {problem}")
        return Gateway(meta=meta, spec=doc.d.decode_object(GatewaySpec, raw, at))
    if kind == "ServiceEntry":
        entry = doc.d.decode_object(ServiceEntrySpec, raw, at)
        _check_in(doc.d, entry, meta.namespace)
        return ServiceEntry(meta=meta, spec=entry)
    return WorkloadEntry(meta=meta, spec=doc.d.decode_object(WorkloadEntrySpec, raw, at))


def _check_in(
    decoder: Decoder,
    spec: VirtualServiceSpec | DestinationRuleSpec | ServiceEntrySpec,
    namespace: str,
) -> bool:
    """Rules that need the resource's namespace, once the spec itself is valid; True when
    the spec passed them all."""
    if spec is INVALID:
        return False
    before = len(decoder.errors)
    for path, message in spec.check_in(namespace):
        decoder.fail(("spec", *path), message)
    return len(decoder.errors) == before


def _service(doc: _View, meta: ObjectMeta) -> Service:
    spec = doc.view("spec")
    cluster_ip = spec.get("clusterIP", str, "") or None
    ports = tuple(
        ServicePort(
            name=p.get("name", str, ""),
            port=p.get("port", int, 0),
            target_port=p.value.get("targetPort")
            if isinstance(p.value.get("targetPort"), int | str)
            else None,
            protocol=port_protocol(
                name=p.get("name", str, ""),
                app_protocol=p.get("appProtocol", str, None),
                l4=p.get("protocol", str, "TCP"),
            ),
        )
        for p in spec.views("ports")
    )
    return Service(
        meta=meta,
        cluster_ip=None if cluster_ip == "None" else cluster_ip,
        ports=ports,
        selector=spec.get("selector", FrozenDict[str, str], FrozenDict()),
    )


def _endpoint_slice(doc: _View, meta: ObjectMeta) -> EndpointSlice:
    endpoints = []
    for e in doc.views("endpoints"):
        conditions = e.view("conditions")
        # Kubernetes: a nil `ready` means ready; `serving` defaults to `ready`.
        ready = conditions.get("ready", bool, True)
        target = e.view("targetRef")
        endpoints.append(
            Endpoint(
                addresses=e.get("addresses", tuple[str, ...], ()),
                ready=ready,
                serving=conditions.get("serving", bool, ready),
                terminating=conditions.get("terminating", bool, False),
                pod=target.get("name", str, None) if target.get("kind", str, "") == "Pod" else None,
                node_name=e.get("nodeName", str, None),
                zone=e.get("zone", str, None),
            )
        )
    ports = tuple(
        EndpointPort(
            name=p.get("name", str, ""),
            port=p.get("port", int, 0),
            protocol=p.get("protocol", str, "TCP"),
        )
        for p in doc.views("ports")
    )
    return EndpointSlice(
        meta=meta,
        service=meta.labels.get("kubernetes.io/service-name"),
        address_type=doc.get("addressType", str, "IPv4"),
        endpoints=tuple(endpoints),
        ports=ports,
    )


def _pod(doc: _View, meta: ObjectMeta) -> Pod:
    spec, status = doc.view("spec"), doc.view("status")
    ready = any(
        c.get("type", str, "") == "Ready" and c.get("status", str, "") == "True"
        for c in status.views("conditions")
    )
    return Pod(
        meta=meta,
        ip=status.get("podIP", str, None),
        node_name=spec.get("nodeName", str, None),
        service_account=spec.get("serviceAccountName", str, "default"),
        phase=status.get("phase", str, "Pending"),
        ready=ready,
        host_network=spec.get("hostNetwork", bool, False),
    )


def _secret(doc: _View, meta: ObjectMeta) -> Secret | Other:
    """A TLS credential, checked (secrets.py); any other Secret is `Other`, its data unread."""
    secret_type = doc.get("type", str, secrets.OPAQUE_TYPE)
    none: FrozenDict[str, str] = FrozenDict()
    encoded = doc.get("data", FrozenDict[str, str], none)
    plain = doc.get("stringData", FrozenDict[str, str], none)
    keys = frozenset(encoded) | frozenset(plain)
    if not secrets.is_credential(secret_type, keys):
        return Other(api_version="v1", kind="Secret", meta=meta)
    data: dict[str, bytes] = {}
    where: dict[str, Path] = {}
    for key, text in encoded.items():
        where[key] = ("data", MapKey(key))
        try:
            data[key] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            doc.d.fail(where[key], "must be base64, as Kubernetes keeps Secret data")
    # Kubernetes merges stringData into data; stringData wins.
    for key, text in plain.items():
        where[key] = ("stringData", MapKey(key))
        data[key] = text.encode()
    for key, problem in secrets.check_credential(secret_type, data):
        doc.d.fail(where.get(key, ("data", MapKey(key))), problem)
    chain, private, ca = secrets.credential_keys(keys)
    return Secret(
        meta=meta,
        type=secret_type,
        certificate_chain=data.get(chain),
        private_key=data.get(private),
        ca_certificates=data.get(ca),
    )


_KUBE_KINDS: dict[tuple[str, str], Callable[[_View, ObjectMeta], Resource]] = {
    ("v1", "Service"): _service,
    ("discovery.k8s.io/v1", "EndpointSlice"): _endpoint_slice,
    ("v1", "Pod"): _pod,
    ("v1", "Secret"): _secret,
}
_ISTIO_KINDS = (
    "VirtualService",
    "DestinationRule",
    "WorkloadEntry",
    "Sidecar",
    "Gateway",
    "ServiceEntry",
)


# Kinds that make pods, and where their pod template is.
_POD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def _pod_labels(doc: Mapping[str, Any], kind: str) -> FrozenDict[str, str] | None:
    """The pod template's labels of a kind that makes pods; read leniently: such a document is
    not istiolite's to validate, and one that is not as expected simply has none."""
    path = _POD_TEMPLATES.get(kind)
    if path is None:
        return None
    node: Any = doc
    for key in (*path, "metadata", "labels"):
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return FrozenDict()
    return FrozenDict({k: v for k, v in node.items() if isinstance(k, str) and isinstance(v, str)})


def describe_resource(doc: Any) -> str:
    """`VirtualService default/reviews`, as far as a possibly-broken document allows."""
    if not isinstance(doc, Mapping):
        return "document"
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "document"
    meta: Mapping[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), Mapping) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else "<unnamed>"
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    return f"{kind} {namespace or DEFAULT_NAMESPACE}/{name}"


def parse_resource(doc: Any) -> Resource:
    """Turn one decoded YAML/JSON document into a typed resource, or raise ValidationError."""
    decoder = Decoder()
    label = describe_resource(doc)
    view = _View(decoder, doc, ())
    api_version = view.get("apiVersion", str, "")
    kind = view.get("kind", str, "")
    if not api_version:
        decoder.fail(("apiVersion",), "required")
    if not kind:
        decoder.fail(("kind",), "required")
    if decoder.errors:
        raise ValidationError(label, decoder.errors)
    if problem := kind_problem(api_version, kind):
        field, message = problem
        decoder.fail((field,), message)
        raise ValidationError(label, decoder.errors)
    meta = _meta(view)
    resource: Resource
    if kind in _ISTIO_KINDS and api_version.startswith(f"{ISTIO_GROUP}/"):
        resource = _istio(kind, view, meta)
    elif (api_version, kind) in _KUBE_KINDS:
        resource = _KUBE_KINDS[api_version, kind](view, meta)
    else:
        resource = Other(
            api_version=api_version, kind=kind, meta=meta, pod_labels=_pod_labels(doc, kind)
        )
    if decoder.errors:
        raise ValidationError(label, decoder.errors)
    return resource


@model
class Parsed:
    """One document of a YAML stream: its resource, or why it could not be read."""

    source: str  # "file.yaml#2": file and 0-based document index
    resource: Resource | None
    error: ValidationError | None


def parse_yaml(text: str, *, source: str = "<stdin>") -> list[Parsed]:
    """Parse a multi-document YAML stream; each document succeeds or fails on its own.

    A `kind: List` document is flattened into its items, as kubectl does.
    """
    try:
        docs = load_all(text)
    except YamlError as e:
        at = f" at line {e.line}, column {e.column}" if e.line else ""
        error = ValidationError(source, [FieldError((), f"malformed YAML{at}: {e.problem}")])
        return [Parsed(source=source, resource=None, error=error)]
    out: list[Parsed] = []
    for i, doc in enumerate(_flatten_lists(docs)):
        name = f"{source}#{i}"
        try:
            out.append(Parsed(source=name, resource=parse_resource(doc), error=None))
        except ValidationError as e:
            out.append(Parsed(source=name, resource=None, error=e))
    return out


def _flatten_lists(docs: list[Any]) -> Iterator[Any]:
    for doc in docs:
        if (
            isinstance(doc, Mapping)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            yield from doc["items"]
        else:
            yield doc
