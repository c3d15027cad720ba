"""Cross-checks over a set of resources, the way `istioctl analyze` reports them.

Validation of a single resource happens when it is parsed; this module adds what only shows
when resources are seen together: a route to a subset no DestinationRule defines, two
VirtualServices claiming one host, a route to a host no Service provides, two namespace-wide
Sidecars in one namespace. Pure: parsed resources in, findings out.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from istiolite.api import (
    DEFAULT_DOMAIN_SUFFIX,
    DestinationRule,
    Parsed,
    Service,
    Sidecar,
    ValidationError,
    VirtualService,
    format_path,
    resolve_host,
)
from istiolite.api.errors import Path
from istiolite.api.networking import Destination


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
    for i, tcp in enumerate(vs.spec.tcp):
        for j, dest in enumerate(tcp.route):
            yield ("spec", "tcp", i, "route", j, "destination"), dest.destination


@dataclass
class _Index:
    """Who provides which host, built once from every parsed resource."""

    services: dict[str, Service]
    subsets: dict[str, set[str]]
    rules: dict[str, list[Parsed]]
    virtual_services: dict[str, list[Parsed]]
    # namespace -> its Sidecars without workloadSelector, by name
    namespace_sidecars: dict[str, list[Parsed]]

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
            elif isinstance(r, VirtualService):
                for h in r.spec.hosts:
                    index.virtual_services[resolve_host(h, r.meta.namespace, domain_suffix)].append(
                        item
                    )
        for found in index.namespace_sidecars.values():
            found.sort(key=_sort_key)  # the first by name is the one in force
        return index


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
    for i, h in enumerate(vs.spec.hosts):
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
        service = index.services.get(host)
        if service is None:
            yield _finding(
                Severity.WARNING,
                "ServiceNotFound",
                item,
                (*path, "host"),
                f"no Service {host} among the analyzed resources",
            )
        elif dest.port is not None and dest.port.number not in {p.port for p in service.ports}:
            ports = ", ".join(str(p.port) for p in service.ports)
            yield _finding(
                Severity.ERROR,
                "ReferencedResourceNotFound",
                item,
                (*path, "port", "number"),
                f"Service {host} has no port {dest.port.number}; it has {ports or 'no ports'}",
            )
        if dest.subset is not None and dest.subset not in index.subsets.get(host, set()):
            yield _missing_subset(item, (*path, "subset"), dest.subset, host, index)


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
    if host not in index.services and not host.startswith("*"):
        yield _finding(
            Severity.WARNING,
            "ServiceNotFound",
            item,
            ("spec", "host"),
            f"no Service {host} among the analyzed resources",
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
            if name not in index.services:
                yield _finding(
                    Severity.WARNING,
                    "ServiceNotFound",
                    item,
                    ("spec", "egress", i, "hosts", j),
                    f"no Service {name} among the analyzed resources",
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
