"""Cross-checks over a set of resources, the way `istioctl analyze` reports them.

Validation of a single resource happens when it is parsed; this module adds what only shows
when resources are seen together: a route to a subset no DestinationRule defines, two
VirtualServices claiming one host, a route to a host no Service or ServiceEntry provides, two
namespace-wide Sidecars in one namespace, a VirtualService bound to a Gateway that is not
there, a Gateway whose selector matches no workload, a credentialName naming no Secret. Pure:
parsed resources in, findings out.

What may be applied on its own (Istio's bookinfo applies its DestinationRules, Gateway and
routes from separate files) is a warning when absent; what contradicts a resource that is
present is an error. The ingress gateway istiolite installs (`istio-system`, labels
`istio: ingressgateway`) counts as a workload even when not among the files: Gateways written
for Istio's default install select it.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from istiolite import ingress
from istiolite.api import (
    DEFAULT_DOMAIN_SUFFIX,
    MESH,
    DestinationRule,
    Gateway,
    Other,
    Parsed,
    Pod,
    Secret,
    Service,
    ServiceEntry,
    Sidecar,
    ValidationError,
    VirtualService,
    WorkloadEntry,
    format_path,
    resolve_host,
)
from istiolite.api.errors import Path
from istiolite.api.gateway import ServerTLSMode, split_gateway_host
from istiolite.api.networking import Destination, hosts_overlap
from istiolite.api.secrets import ca_secret_name


class Severity(enum.StrEnum):
    ERROR = "Error"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    resource: str  # "VirtualService default/reviews"
    source: str  # "bookinfo.yaml#2"
    path: str  # "spec.http[0].route[0].destination.subset", or "" for the whole resource
    message: str

    def __str__(self) -> str:
        where = f" {self.path}:" if self.path else ""
        return (
            f"{self.severity} [{self.code}] {self.resource} ({self.source}){where} {self.message}"
        )


def _finding(severity: Severity, code: str, item: Parsed, path: Path, message: str) -> Finding:
    resource = item.resource
    assert resource is not None
    return Finding(
        severity=severity,
        code=code,
        resource=f"{resource.KIND} {resource.meta.key}",
        source=item.source,
        path=format_path(path) if path else "",
        message=message,
    )


def _validation(error: ValidationError, source: str) -> Iterator[Finding]:
    for e in error.errors:
        yield Finding(
            severity=Severity.ERROR,
            code="InvalidResource",
            resource=error.resource,
            source=source,
            path=format_path(e.path) if e.path else "",
            message=e.message,
        )


def _destinations(vs: VirtualService) -> Iterator[tuple[Path, Destination]]:
    for i, http in enumerate(vs.spec.http):
        for j, route in enumerate(http.route):
            yield ("spec", "http", i, "route", j, "destination"), route.destination
        if http.mirror is not None:
            yield ("spec", "http", i, "mirror"), http.mirror
    for kind in ("tcp", "tls"):
        for i, l4 in enumerate(getattr(vs.spec, kind)):
            for j, dest in enumerate(l4.route):
                yield ("spec", kind, i, "route", j, "destination"), dest.destination


def _bound_gateways(vs: VirtualService) -> Iterator[tuple[Path, str]]:
    """Every Gateway a VirtualService names, where (`namespace/name`; `mesh` left out)."""
    for i, name in enumerate(vs.spec.gateways):
        yield ("spec", "gateways", i), name
    for kind in ("http", "tcp", "tls"):
        for i, route in enumerate(getattr(vs.spec, kind)):
            for j, match in enumerate(route.match):
                for k, name in enumerate(match.gateways):
                    yield ("spec", kind, i, "match", j, "gateways", k), name


@dataclass(frozen=True, slots=True)
class _Workload:
    """Pods of one namespace with these labels (a Pod, a WorkloadEntry or a pod template)."""

    namespace: str
    labels: Mapping[str, str]
    what: str  # "Deployment istio-system/istio-ingressgateway"


INSTALLED_GATEWAY = _Workload(
    ingress.NAMESPACE, ingress.LABELS, f"istiolite's ingress gateway {ingress.NAME}"
)


@dataclass
class _Index:
    """Who provides which host, built once from every parsed resource."""

    services: dict[str, Service]
    subsets: dict[str, set[str]]
    rules: dict[str, list[Parsed]]
    # mesh-bound VirtualServices by host: two for one host conflict in every sidecar
    virtual_services: dict[str, list[Parsed]]
    # namespace -> its Sidecars without workloadSelector, by name
    namespace_sidecars: dict[str, list[Parsed]]
    entries: dict[str, ServiceEntry] = field(default_factory=dict)  # by host, as written
    gateways: dict[str, Gateway] = field(default_factory=dict)  # by namespace/name
    workloads: list[_Workload] = field(default_factory=lambda: [INSTALLED_GATEWAY])
    secrets: dict[str, Secret | Other] = field(default_factory=dict)  # by namespace/name

    @classmethod
    def build(cls, items: list[Parsed], domain_suffix: str) -> _Index:
        index = cls({}, defaultdict(set), defaultdict(list), defaultdict(list), defaultdict(list))
        for item in items:
            r = item.resource
            if isinstance(r, Sidecar):
                selector = r.spec.workload_selector
                if selector is None or not selector.labels:
                    index.namespace_sidecars[r.meta.namespace].append(item)
            elif isinstance(r, Service):
                index.services[r.hostname(domain_suffix)] = r
            elif isinstance(r, DestinationRule):
                host = resolve_host(r.spec.host, r.meta.namespace, domain_suffix)
                index.subsets[host].update(s.name for s in r.spec.subsets)
                index.rules[host].append(item)
            elif isinstance(r, VirtualService) and r.mesh:
                for h in r.spec.hosts:
                    index.virtual_services[resolve_host(h, r.meta.namespace, domain_suffix)].append(
                        item
                    )
            else:
                index._add(r)
        for found in index.namespace_sidecars.values():
            found.sort(key=_sort_key)  # the first by name is the one in force
        return index

    def _add(self, r: object) -> None:
        if isinstance(r, ServiceEntry):
            for host in r.spec.hosts:
                self.entries.setdefault(host, r)
        elif isinstance(r, Gateway):
            self.gateways[r.ref] = r
        elif isinstance(r, Pod | WorkloadEntry):
            labels = r.meta.labels if isinstance(r, Pod) else r.spec.labels
            self.workloads.append(_Workload(r.meta.namespace, labels, f"{r.KIND} {r.meta.key}"))
        elif isinstance(r, Other) and r.pod_labels is not None:
            self.workloads.append(
                _Workload(r.meta.namespace, r.pod_labels, f"{r.kind} {r.meta.key}")
            )
        if isinstance(r, Secret) or (isinstance(r, Other) and r.kind == "Secret"):
            self.secrets[r.meta.key] = r

    def entry_for(self, host: str) -> ServiceEntry | None:
        """The ServiceEntry whose hosts take `host`: the same name, or a wildcard over it."""
        if host in self.entries:
            return self.entries[host]
        return next(
            (e for h, e in self.entries.items() if h.startswith("*") and host.endswith(h[1:])),
            None,
        )

    def selected(self, gateway: Gateway) -> list[_Workload]:
        selector = gateway.spec.selector
        return [w for w in self.workloads if all(w.labels.get(k) == v for k, v in selector.items())]


def analyze(
    items: Iterable[Parsed], *, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> list[Finding]:
    """Every finding for a set of parsed documents, errors and warnings, in document order."""
    items = list(items)
    latest = {_identity(i): i for i in items if i.resource is not None}
    current = [i for i in items if i.resource is None or latest[_identity(i)] is i]
    index = _Index.build(current, domain_suffix)
    findings: list[Finding] = []
    for item in items:
        if item.error is not None:
            findings.extend(_validation(item.error, item.source))
        elif latest[_identity(item)] is not item:
            # Like `kubectl apply` of both files: the later definition replaces this one.
            yield_to = latest[_identity(item)].source
            findings.append(
                _finding(
                    Severity.WARNING,
                    "DuplicateResource",
                    item,
                    (),
                    f"defined again in {yield_to}; the later definition replaces this one",
                )
            )
        elif isinstance(item.resource, VirtualService):
            findings.extend(_check_virtual_service(item, item.resource, index, domain_suffix))
        elif isinstance(item.resource, DestinationRule):
            findings.extend(_check_destination_rule(item, item.resource, index, domain_suffix))
        elif isinstance(item.resource, Sidecar):
            findings.extend(_check_sidecar(item, item.resource, index))
        elif isinstance(item.resource, Gateway):
            findings.extend(_check_gateway(item, item.resource, index))
    return findings


def _sort_key(item: Parsed) -> tuple[str, str]:
    return (item.resource.meta.namespace, item.resource.meta.name) if item.resource else ("", "")


def _identity(item: Parsed) -> tuple[str, str]:
    resource = item.resource
    assert resource is not None
    return (resource.KIND, resource.meta.key)


def _check_virtual_service(
    item: Parsed, vs: VirtualService, index: _Index, domain_suffix: str
) -> Iterator[Finding]:
    ns = vs.meta.namespace
    # Only sidecars' VirtualServices conflict: a gateway merges those bound to it (Istio's rule).
    for i, h in enumerate(vs.spec.hosts if vs.mesh else ()):
        host = resolve_host(h, ns, domain_suffix)
        others = [o for o in index.virtual_services[host] if o is not item]
        if others:
            names = ", ".join(f"{o.resource.meta.key}" for o in others if o.resource)
            yield _finding(
                Severity.ERROR,
                "ConflictingVirtualServiceHosts",
                item,
                ("spec", "hosts", i),
                f"host {host} is also claimed by VirtualService {names}; "
                f"only one VirtualService may route a host",
            )
    for path, dest in _destinations(vs):
        host = resolve_host(dest.host, ns, domain_suffix)
        yield from _check_destination(item, path, dest, host, index)
    yield from _check_bindings(item, vs, index, domain_suffix)


def _check_destination(
    item: Parsed, path: Path, dest: Destination, host: str, index: _Index
) -> Iterator[Finding]:
    service = index.services.get(host)
    entry = None if service is not None else index.entry_for(host)
    if service is None and entry is None:
        yield _finding(
            Severity.WARNING,
            "ServiceNotFound",
            item,
            (*path, "host"),
            f"no Service or ServiceEntry {host} among the analyzed resources",
        )
    elif dest.port is not None:
        if service is not None:
            ports, what = [p.port for p in service.ports], f"Service {host}"
        else:
            assert entry is not None
            ports, what = [p.number for p in entry.spec.ports], f"ServiceEntry {entry.meta.key}"
        if dest.port.number not in ports:
            have = ", ".join(map(str, ports)) or "no ports"
            yield _finding(
                Severity.ERROR,
                "ReferencedResourceNotFound",
                item,
                (*path, "port", "number"),
                f"{what} has no port {dest.port.number}; it has {have}",
            )
    if dest.subset is not None and dest.subset not in index.subsets.get(host, set()):
        yield _missing_subset(item, (*path, "subset"), dest.subset, host, index)


def _check_bindings(
    item: Parsed, vs: VirtualService, index: _Index, domain_suffix: str
) -> Iterator[Finding]:
    """Each Gateway named must be there, and serve at least one of the VirtualService's hosts
    to the VirtualService's namespace (Istio's IST0101 and IST0132)."""
    ns = vs.meta.namespace
    hosts = [resolve_host(h, ns, domain_suffix) for h in vs.spec.hosts]
    for path, name in _bound_gateways(vs):
        if name == MESH:
            continue
        gateway = index.gateways.get(name)
        if gateway is None:
            yield _finding(
                Severity.WARNING,
                "ReferencedResourceNotFound",
                item,
                path,
                f"no Gateway {name} among the analyzed resources; the routes bound to it "
                f"apply nowhere until it exists",
            )
        elif len(path) == 3 and not _serves(gateway, ns, hosts):  # spec.gateways[i]
            yield _finding(
                Severity.WARNING,
                "VirtualServiceHostNotFoundInGateway",
                item,
                path,
                f"Gateway {name} serves none of the hosts {', '.join(vs.spec.hosts)} to "
                f"namespace {ns}: its servers' hosts are "
                f"{', '.join(h for s in gateway.spec.servers for h in s.hosts)}",
            )


def _serves(gateway: Gateway, namespace: str, hosts: list[str]) -> bool:
    for server in gateway.spec.servers:
        for entry in server.hosts:
            admits, name = split_gateway_host(entry, gateway.meta.namespace)
            if admits in ("*", namespace) and any(hosts_overlap(name, h) for h in hosts):
                return True
    return False


def _check_gateway(item: Parsed, gateway: Gateway, index: _Index) -> Iterator[Finding]:
    selected = index.selected(gateway)
    if not selected:
        labels = ",".join(f"{k}={v}" for k, v in gateway.spec.selector.items())
        yield _finding(
            Severity.WARNING,
            "ReferencedResourceNotFound",
            item,
            ("spec", "selector"),
            f"no workload among the analyzed resources (Pods, WorkloadEntries, pod templates "
            f"of Deployments and the like, and istiolite's ingress gateway "
            f"{ingress.NAMESPACE}/{ingress.NAME}) has the labels {labels}: the Gateway "
            f"configures no proxy",
        )
        return
    # Istio's rule: the Secret is looked up in the namespace of the gateway workload.
    namespaces = sorted({w.namespace for w in selected})
    for i, server in enumerate(gateway.spec.servers):
        tls = server.tls
        if tls is None or tls.credential_name is None:
            continue
        path = ("spec", "servers", i, "tls", "credentialName")
        yield from _check_credential(item, path, tls.credential_name, namespaces, index)
        if tls.mode is ServerTLSMode.MUTUAL:
            yield from _check_client_ca(item, path, tls.credential_name, namespaces, index)


def _check_credential(
    item: Parsed, path: Path, name: str, namespaces: list[str], index: _Index
) -> Iterator[Finding]:
    for namespace in namespaces:
        secret = index.secrets.get(f"{namespace}/{name}")
        if secret is None:
            yield _finding(
                Severity.WARNING,
                "ReferencedResourceNotFound",
                item,
                path,
                f"no Secret {namespace}/{name} among the analyzed resources (the Secret is "
                f"read in the namespace of the gateway workload, {namespace})",
            )
        elif not isinstance(secret, Secret) or not secret.has_certificate:
            yield _finding(
                Severity.ERROR,
                "InvalidGatewayCredential",
                item,
                path,
                f"Secret {namespace}/{name} holds no certificate and key: a kubernetes.io/tls "
                f"Secret with tls.crt and tls.key (or Istio's cert and key) is needed",
            )


def _check_client_ca(
    item: Parsed, path: Path, name: str, namespaces: list[str], index: _Index
) -> Iterator[Finding]:
    for namespace in namespaces:
        own = index.secrets.get(f"{namespace}/{name}")
        if own is None:
            continue  # already reported
        ca = index.secrets.get(f"{namespace}/{ca_secret_name(name)}")
        if any(isinstance(s, Secret) and s.ca_certificates for s in (own, ca)):
            continue
        yield _finding(
            Severity.WARNING,
            "ReferencedResourceNotFound",
            item,
            path,
            f"MUTUAL TLS needs the CA of client certificates: ca.crt in Secret "
            f"{namespace}/{name}, or a Secret {namespace}/{ca_secret_name(name)}; neither "
            f"is among the analyzed resources",
        )


def _missing_subset(item: Parsed, path: Path, subset: str, host: str, index: _Index) -> Finding:
    """An error when the host's DestinationRule lacks the subset; a warning when no rule for
    the host is among the analyzed files, as it may be applied on its own (Istio's bookinfo
    applies destination-rule-all.yaml apart from the routes that name its subsets)."""
    if index.rules.get(host):
        defined = ", ".join(sorted(index.subsets[host])) or "none"
        return _finding(
            Severity.ERROR,
            "ReferencedResourceNotFound",
            item,
            path,
            f"subset {subset!r} of host {host} is not defined (defined: {defined})",
        )
    return _finding(
        Severity.WARNING,
        "ReferencedResourceNotFound",
        item,
        path,
        f"subset {subset!r} of host {host}: no DestinationRule for the host among the analyzed "
        f"resources; the route fails (503) until one defines the subset",
    )


def _check_destination_rule(
    item: Parsed, dr: DestinationRule, index: _Index, domain_suffix: str
) -> Iterator[Finding]:
    host = resolve_host(dr.spec.host, dr.meta.namespace, domain_suffix)
    if host not in index.services and index.entry_for(host) is None:
        yield _finding(
            Severity.WARNING,
            "ServiceNotFound",
            item,
            ("spec", "host"),
            f"no Service or ServiceEntry {host} among the analyzed resources",
        )
    others = [o for o in index.rules[host] if o is not item]
    if others:
        names = ", ".join(o.resource.meta.key for o in others if o.resource)
        yield _finding(
            Severity.WARNING,
            "ConflictingDestinationRulesHost",
            item,
            ("spec", "host"),
            f"host {host} also has DestinationRule {names}; only the first by "
            f"namespace/name takes effect",
        )


def _check_sidecar(item: Parsed, sidecar: Sidecar, index: _Index) -> Iterator[Finding]:
    ns = sidecar.meta.namespace
    defaults = index.namespace_sidecars.get(ns, [])
    if item in defaults and len(defaults) > 1:
        chosen = defaults[0].resource
        assert chosen is not None
        others = ", ".join(o.resource.meta.name for o in defaults if o is not item and o.resource)
        yield _finding(
            Severity.ERROR,
            "MultipleSidecarsWithoutSelectors",
            item,
            (),
            f"namespace {ns} also has Sidecar {others} without workloadSelector; only one "
            f"may be the namespace's default, and istiolite takes the first by name "
            f"({chosen.meta.name})",
        )
    for i, listener in enumerate(sidecar.spec.egress):
        for j, host in enumerate(listener.hosts):
            namespace, _, name = host.partition("/")
            if namespace in ("*", "~", ".") or name == "*" or name.startswith("*."):
                continue  # a pattern, or `.`: relative to each proxy's namespace
            entry = index.entries.get(name)
            if entry is not None:
                if entry.meta.namespace != namespace:
                    yield _finding(
                        Severity.WARNING,
                        "ServiceNotFound",
                        item,
                        ("spec", "egress", i, "hosts", j),
                        f"ServiceEntry {entry.meta.key} for {name} is not in namespace "
                        f"{namespace}: this entry selects nothing",
                    )
            elif name not in index.services:
                yield _finding(
                    Severity.WARNING,
                    "ServiceNotFound",
                    item,
                    ("spec", "egress", i, "hosts", j),
                    f"no Service or ServiceEntry {name} among the analyzed resources",
                )
            elif index.services[name].meta.namespace != namespace:
                actual = index.services[name].meta.namespace
                yield _finding(
                    Severity.WARNING,
                    "ServiceNotFound",
                    item,
                    ("spec", "egress", i, "hosts", j),
                    f"Service {name} is in namespace {actual}, not {namespace}: "
                    f"this entry selects nothing",
                )
