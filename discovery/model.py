"""The mesh as data: an immutable snapshot that translation reads, and the proxy it is for.

Registries (files, Kubernetes) hand over typed API resources; `build_snapshot` joins them once
per push into what translation needs: each service with its ports and the endpoints behind each
port, the VirtualServices and DestinationRules that apply to each host, and the workloads (Pods,
WorkloadEntries) by address. Translation never searches raw resources again.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from istiolite.api import (
    DEFAULT_DOMAIN_SUFFIX,
    DestinationRule,
    EndpointSlice,
    Pod,
    Resource,
    Service,
    VirtualService,
    WorkloadEntry,
    resolve_host,
)
from istiolite.api.decode import FrozenDict, model
from istiolite.api.networking import Subset, TrafficPolicy
from istiolite.api.resources import Protocol, ServicePort


class Health(enum.Enum):
    HEALTHY = "HEALTHY"
    DRAINING = "DRAINING"  # terminating but still serving: finish, take nothing new
    UNHEALTHY = "UNHEALTHY"


@model
class ServiceEndpoint:
    address: str
    port: int  # the workload's port (the resolved targetPort)
    labels: FrozenDict[str, str]
    health: Health
    weight: int = 1


@model
class MeshService:
    hostname: str
    name: str
    namespace: str
    cluster_ip: str | None
    ports: tuple[ServicePort, ...]
    selector: FrozenDict[str, str]
    # service port number -> endpoints behind it, every health state, in a stable order
    endpoints: FrozenDict[int, tuple[ServiceEndpoint, ...]]

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


@model
class Workload:
    kind: str  # "Pod" or "WorkloadEntry"
    name: str
    namespace: str
    address: str
    labels: FrozenDict[str, str]
    service_account: str


def visible(export_to: tuple[str, ...], owner_namespace: str, namespace: str) -> bool:
    """Istio's exportTo: empty or `*` is everyone, `.` the owner's namespace, else the names."""
    if not export_to or "*" in export_to:
        return True
    return namespace in export_to or ("." in export_to and namespace == owner_namespace)


@model
class Snapshot:
    """Everything translation needs, indexed once. Equal content compares equal."""

    domain_suffix: str
    services: FrozenDict[str, MeshService]  # by hostname, sorted
    virtual_services: tuple[VirtualService, ...]  # sorted by namespace/name
    destination_rules: tuple[DestinationRule, ...]  # sorted by namespace/name
    workloads: FrozenDict[str, Workload]  # by address

    def resolve(self, host: str, namespace: str) -> str:
        return resolve_host(host, namespace, self.domain_suffix)

    def destination_rule(self, hostname: str, namespace: str) -> DestinationRule | None:
        """The rule for a host as seen from a proxy's namespace: the first visible one."""
        for rule in self.destination_rules:
            if self.resolve(rule.spec.host, rule.meta.namespace) == hostname and visible(
                rule.spec.export_to, rule.meta.namespace, namespace
            ):
                return rule
        return None

    def virtual_service(self, hostname: str, namespace: str) -> VirtualService | None:
        """The VirtualService routing a host, seen from a namespace; exact hosts beat wildcards."""
        best: tuple[int, VirtualService] | None = None
        for vs in self.virtual_services:
            if not visible(vs.spec.export_to, vs.meta.namespace, namespace):
                continue
            for host in vs.spec.hosts:
                score = _host_match(self.resolve(host, vs.meta.namespace), hostname)
                if score and (best is None or score > best[0]):
                    best = (score, vs)
        return best[1] if best else None


def _host_match(pattern: str, hostname: str) -> int:
    """0 for no match; a higher number for a more specific match."""
    if pattern == hostname:
        return 1_000
    if pattern == "*":
        return 1
    if pattern.startswith("*.") and hostname.endswith(pattern[1:]):
        return len(pattern)
    return 0


def subset_policy(
    rule: DestinationRule | None, subset: str | None
) -> tuple[Subset | None, TrafficPolicy | None]:
    """The subset of a rule and the policy in force for it (the subset's overrides the rule's)."""
    if rule is None:
        return None, None
    found = next((s for s in rule.spec.subsets if s.name == subset), None) if subset else None
    policy = found.traffic_policy if found and found.traffic_policy else rule.spec.traffic_policy
    return found, policy


# --- building ---------------------------------------------------------------------------------


def _workloads(resources: Iterable[Resource]) -> dict[str, Workload]:
    out: dict[str, Workload] = {}
    for r in resources:
        if isinstance(r, Pod) and r.ip and not r.host_network:
            out[r.ip] = Workload(
                kind="Pod",
                name=r.meta.name,
                namespace=r.meta.namespace,
                address=r.ip,
                labels=r.meta.labels,
                service_account=r.service_account,
            )
        elif isinstance(r, WorkloadEntry):
            out[r.spec.address] = Workload(
                kind="WorkloadEntry",
                name=r.meta.name,
                namespace=r.meta.namespace,
                address=r.spec.address,
                labels=r.spec.labels,
                service_account=r.spec.service_account or "default",
            )
    return out


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _slice_endpoints(
    service: Service, slices: list[EndpointSlice], workloads: Mapping[str, Workload]
) -> dict[int, list[ServiceEndpoint]]:
    out: dict[int, list[ServiceEndpoint]] = defaultdict(list)
    for es in slices:
        numbers = {p.name: p.port for p in es.ports}
        for sp in service.ports:
            target = numbers.get(sp.name)
            if target is None:
                continue
            for e in es.endpoints:
                health = (
                    Health.HEALTHY
                    if e.ready
                    else Health.DRAINING
                    if e.serving and e.terminating
                    else Health.UNHEALTHY
                )
                for address in e.addresses:
                    workload = workloads.get(address)
                    labels = workload.labels if workload else FrozenDict()
                    out[sp.port].append(
                        ServiceEndpoint(address=address, port=target, labels=labels, health=health)
                    )
    return out


def _entry_endpoints(
    service: Service, entries: list[WorkloadEntry]
) -> dict[int, list[ServiceEndpoint]]:
    out: dict[int, list[ServiceEndpoint]] = defaultdict(list)
    for entry in entries:
        if entry.meta.namespace != service.meta.namespace or not _selects(
            service.selector, entry.spec.labels
        ):
            continue
        for sp in service.ports:
            target = entry.spec.ports.get(sp.name)
            if target is None:
                target = sp.target_port if isinstance(sp.target_port, int) else sp.port
            out[sp.port].append(
                ServiceEndpoint(
                    address=entry.spec.address,
                    port=target,
                    labels=entry.spec.labels,
                    health=Health.HEALTHY,
                    weight=entry.spec.weight or 1,
                )
            )
    return out


def build_snapshot(
    resources: Iterable[Resource], *, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> Snapshot:
    """Join registry resources into a Snapshot. Pure; deterministic order for stable versions."""
    resources = list(resources)
    workloads = _workloads(resources)
    slices: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
    entries = [r for r in resources if isinstance(r, WorkloadEntry)]
    for r in resources:
        if isinstance(r, EndpointSlice) and r.service:
            slices[r.meta.namespace, r.service].append(r)
    services: dict[str, MeshService] = {}
    for r in resources:
        if not isinstance(r, Service):
            continue
        endpoints = _slice_endpoints(
            r, sorted(slices[r.meta.namespace, r.meta.name], key=_name), workloads
        )
        for port, found in _entry_endpoints(r, entries).items():
            endpoints[port].extend(found)
        hostname = r.hostname(domain_suffix)
        services[hostname] = MeshService(
            hostname=hostname,
            name=r.meta.name,
            namespace=r.meta.namespace,
            cluster_ip=r.cluster_ip,
            ports=r.ports,
            selector=r.selector,
            endpoints=FrozenDict(
                {
                    p: tuple(sorted(e, key=lambda x: (x.address, x.port)))
                    for p, e in sorted(endpoints.items())
                }
            ),
        )
    return Snapshot(
        domain_suffix=domain_suffix,
        services=FrozenDict(sorted(services.items())),
        virtual_services=tuple(
            sorted((r for r in resources if isinstance(r, VirtualService)), key=_name)
        ),
        destination_rules=tuple(
            sorted((r for r in resources if isinstance(r, DestinationRule)), key=_name)
        ),
        workloads=FrozenDict(sorted(workloads.items())),
    )


def _name(r: VirtualService | DestinationRule | EndpointSlice) -> tuple[str, str]:
    return (r.meta.namespace, r.meta.name)


# --- the proxy --------------------------------------------------------------------------------


@model
class Proxy:
    """A connected Envoy, identified from its node id and Istio-style node metadata."""

    id: str
    namespace: str
    name: str
    ips: tuple[str, ...]
    labels: FrozenDict[str, str]
    service_account: str

    @classmethod
    def from_node(cls, node_id: str, metadata: Mapping[str, Any]) -> Proxy:
        """Node id `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`; metadata keys as Istio's."""
        parts = node_id.split("~")
        ip = parts[1] if len(parts) == 4 else ""
        pod, _, ns = parts[2].partition(".") if len(parts) == 4 else ("", "", "")
        ips = str(metadata.get("INSTANCE_IPS") or ip).split(",")
        labels = metadata.get("LABELS")
        return cls(
            id=node_id,
            namespace=str(metadata.get("NAMESPACE") or ns or "default"),
            name=str(metadata.get("NAME") or pod),
            ips=tuple(i.strip() for i in ips if i.strip()),
            labels=FrozenDict({str(k): str(v) for k, v in labels.items()})
            if isinstance(labels, Mapping)
            else FrozenDict(),
            service_account=str(metadata.get("SERVICE_ACCOUNT") or "default"),
        )


@model
class Instance:
    """One port the proxy's workload serves for a service: what inbound config is built from."""

    service: MeshService
    port: ServicePort
    target_port: int

    @property
    def protocol(self) -> Protocol:
        return self.port.protocol


def instances(snapshot: Snapshot, proxy: Proxy) -> tuple[Instance, ...]:
    """The service ports this proxy's workload serves, found by endpoint address or selector."""
    found: dict[tuple[str, int], Instance] = {}
    ips = set(proxy.ips)
    for service in snapshot.services.values():
        for sp in service.ports:
            for e in service.endpoints.get(sp.port, ()):
                if e.address in ips:
                    found.setdefault(
                        (service.hostname, sp.port),
                        Instance(service=service, port=sp, target_port=e.port),
                    )
            selected = service.namespace == proxy.namespace and _selects(
                service.selector, proxy.labels
            )
            if (
                selected
                and isinstance(sp.target_port, int | None)
                and (service.hostname, sp.port) not in found
            ):
                target = sp.target_port if isinstance(sp.target_port, int) else sp.port
                found[service.hostname, sp.port] = Instance(
                    service=service, port=sp, target_port=target
                )
    return tuple(found[k] for k in sorted(found))
