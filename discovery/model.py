"""The mesh as data: an immutable snapshot that translation reads, and the proxy it is for.

Registries (files, Kubernetes) hand over typed API resources; `build_snapshot` joins them once
per push into what translation needs: each service with its ports and the endpoints behind each
port, the VirtualServices and DestinationRules that apply to each host, and the workloads (Pods,
WorkloadEntries) by address. Translation never searches raw resources again.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from istiolite.api import (
    DEFAULT_DOMAIN_SUFFIX,
    DestinationRule,
    EndpointSlice,
    Pod,
    Resource,
    Service,
    Sidecar,
    VirtualService,
    WorkloadEntry,
    resolve_host,
)
from istiolite.api.decode import FrozenDict, model
from istiolite.api.networking import OutboundMode, Subset, TrafficPolicy
from istiolite.api.resources import Protocol, ServicePort

DEFAULT_ROOT_NAMESPACE = "istio-system"


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
    # The service apart from its endpoints. The same object while only endpoints change (see
    # build_snapshot), so config that never reads endpoints (clusters, listeners, routes) is
    # known unchanged by identity when a pod comes or goes.
    shape: tuple[object, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.shape:
            names: tuple[object, ...] = (self.hostname, self.name, self.namespace)
            object.__setattr__(self, "shape", (*names, self.cluster_ip, self.ports, self.selector))

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


class Ident:
    """Compares and hashes by identity: a cheap key for objects that are reused while unchanged.

    Holding the object keeps its id from being reused, so equal Idents mean the same object.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ident) and other.obj is self.obj


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
    # Indexes derived from the above, so lookups per proxy and per host are not scans.
    rules_by_host: FrozenDict[str, tuple[DestinationRule, ...]]
    routes_by_host: FrozenDict[str, tuple[VirtualService, ...]]  # exact hosts
    wildcard_routes: tuple[tuple[str, VirtualService], ...]  # ("*.example.com", vs)
    source_label_keys: frozenset[str]  # label keys any route matches callers on
    shared_cluster_ips: frozenset[str]  # cluster IPs claimed by more than one service (bad data)
    served_by: FrozenDict[str, tuple[tuple[str, int, int], ...]]  # address -> (host, port, target)
    by_namespace: FrozenDict[str, tuple[str, ...]]  # namespace -> hostnames
    sidecars: FrozenDict[str, tuple[Sidecar, ...]] = FrozenDict()  # by namespace, by name
    root_namespace: str = DEFAULT_ROOT_NAMESPACE
    # The service-side input objects this was built from; lets the next build skip that work.
    service_inputs: tuple[Resource, ...] = field(default=(), compare=False, repr=False)
    # Per service, the identities of what its MeshService was built from (see _MeshIndex).
    service_memo: Mapping[str, tuple[Ident, ...]] = field(
        default=FrozenDict(), compare=False, repr=False
    )

    def resolve(self, host: str, namespace: str) -> str:
        return resolve_host(host, namespace, self.domain_suffix)

    def destination_rule(self, hostname: str, namespace: str) -> DestinationRule | None:
        """The rule for a host as seen from a proxy's namespace: the first visible one."""
        for rule in self.rules_by_host.get(hostname, ()):
            if visible(rule.spec.export_to, rule.meta.namespace, namespace):
                return rule
        return None

    def virtual_service(self, hostname: str, namespace: str) -> VirtualService | None:
        """The VirtualService routing a host, seen from a namespace; exact hosts beat wildcards."""
        for vs in self.routes_by_host.get(hostname, ()):
            if visible(vs.spec.export_to, vs.meta.namespace, namespace):
                return vs
        best: tuple[int, VirtualService] | None = None
        for pattern, vs in self.wildcard_routes:
            score = _host_match(pattern, hostname)
            seen = visible(vs.spec.export_to, vs.meta.namespace, namespace)
            if score and seen and (best is None or score > best[0]):
                best = (score, vs)
        return best[1] if best else None

    def sidecar(self, proxy: Proxy) -> Sidecar | None:
        """The Sidecar that scopes a proxy, in Istio's order; None: the proxy sees everything.

        A Sidecar of the proxy's namespace whose workloadSelector matches its labels, else the
        namespace's Sidecar without selector, else the root namespace's one without selector.
        Several candidates: the first by name (Istio takes the oldest, which we cannot know
        from files).
        """
        own = self.sidecars.get(proxy.namespace, ())
        for s in own:
            selector = s.spec.workload_selector
            if selector is not None and selector.labels and _selects(selector.labels, proxy.labels):
                return s
        for s in (*own, *self.sidecars.get(self.root_namespace, ())):
            if s.spec.workload_selector is None or not s.spec.workload_selector.labels:
                return s
        return None

    def outbound_services(self, proxy: Proxy) -> list[MeshService]:
        """The services a proxy is configured to call: all, unless its Sidecar says fewer."""
        return scoped_services(self, self.sidecar(proxy), proxy.namespace)

    def outbound_mode(self, proxy: Proxy) -> OutboundMode:
        """Where traffic to hosts outside the proxy's services goes: passed through, or blocked."""
        sidecar = self.sidecar(proxy)
        policy = sidecar.spec.outbound_traffic_policy if sidecar is not None else None
        return policy.mode if policy is not None else OutboundMode.ALLOW_ANY

    def caller_labels(self, proxy: Proxy) -> FrozenDict[str, str]:
        """The part of a proxy's labels that any route looks at: what its config depends on."""
        return FrozenDict({k: v for k, v in proxy.labels.items() if k in self.source_label_keys})


def scoped_services(
    snapshot: Snapshot, sidecar: Sidecar | None, namespace: str
) -> list[MeshService]:
    """The services a Sidecar's egress hosts select for a proxy in `namespace` (all without)."""
    if sidecar is None or not sidecar.spec.egress:
        return list(snapshot.services.values())
    hosts = sidecar.spec.egress[0].hosts
    return [s for s in snapshot.services.values() if egress_selects(hosts, namespace, s)]


def egress_selects(hosts: Iterable[str], namespace: str, service: MeshService) -> bool:
    """Whether `namespace/dnsName` entries select a service (Istio's Sidecar egress hosts).

    The namespace is `*` for any, `.` for the proxy's own (so `./*` in the root namespace's
    default Sidecar means each proxy's own namespace, as in Istio) or a name; the name is `*`,
    a `*.suffix` wildcard or a full host name. An entry whose namespace starts with `~`
    excludes what it matches (`~/x` from any namespace), whatever other entries select: as in
    Istio, `["*/*", "~legacy/*"]` is every service but those of `legacy`.
    """
    selected = False
    for entry in hosts:
        wanted, _, name = entry.partition("/")
        excluded = wanted.startswith("~")
        wanted = wanted.removeprefix("~") or "*"
        wanted = namespace if wanted == "." else wanted
        if wanted not in ("*", service.namespace) or not _name_selects(name, service.hostname):
            continue
        if excluded:
            return False
        selected = True
    return selected


def _name_selects(name: str, hostname: str) -> bool:
    return name in ("*", hostname) or (name.startswith("*.") and hostname.endswith(name[1:]))


def _host_match(pattern: str, hostname: str) -> int:
    """0 for no match; a higher number for a more specific match."""
    if pattern == hostname:
        return 1_000
    if pattern == "*":
        return 1
    if pattern.startswith("*") and hostname.endswith(pattern[1:]):
        return len(pattern)  # `*.example.com`, and Istio's `*example.com` and `*-api.example.com`
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


def _workloads(
    resources: Iterable[Resource], earlier: Mapping[str, Workload]
) -> dict[str, Workload]:
    """Workloads by address, each the earlier object where nothing of it changed."""
    out: dict[str, Workload] = {}
    for r in resources:
        if isinstance(r, Pod) and r.ip and not r.host_network:
            out[r.ip] = _workload(
                earlier.get(r.ip),
                ("Pod", r.meta.name, r.meta.namespace, r.ip, r.service_account),
                r.meta.labels,
            )
        elif isinstance(r, WorkloadEntry):
            address, account = r.spec.address, r.spec.service_account or "default"
            out[address] = _workload(
                earlier.get(address),
                ("WorkloadEntry", r.meta.name, r.meta.namespace, address, account),
                r.spec.labels,
            )
    return out


def _workload(
    kept: Workload | None, fields: tuple[str, str, str, str, str], labels: FrozenDict[str, str]
) -> Workload:
    """`kept` if it is this workload (labels by identity: unchanged resources keep theirs)."""
    kind, name, namespace, address, account = fields
    if (
        kept is not None
        and kept.labels is labels
        and (kept.kind, kept.name, kept.namespace, kept.service_account)
        == (kind, name, namespace, account)
    ):
        return kept
    return Workload(
        kind=kind,
        name=name,
        namespace=namespace,
        address=address,
        labels=labels,
        service_account=account,
    )


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
    service: Service, entries: Mapping[tuple[str, str, str], list[WorkloadEntry]]
) -> dict[int, list[ServiceEndpoint]]:
    out: dict[int, list[ServiceEndpoint]] = defaultdict(list)
    if not service.selector:
        return out
    key, value = next(iter(service.selector.items()))
    for entry in entries.get((service.meta.namespace, key, value), ()):
        if not _selects(service.selector, entry.spec.labels):
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


_WORKLOAD_KINDS = (Service, EndpointSlice, Pod, WorkloadEntry)


def build_snapshot(
    resources: Iterable[Resource],
    *,
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    root_namespace: str = DEFAULT_ROOT_NAMESPACE,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Join registry resources into a Snapshot. Pure; deterministic order for stable versions.

    With `previous`, what did not change is taken from it: all services when no Service,
    EndpointSlice, Pod or WorkloadEntry changed (a routing edit), else each service equal to its
    previous self; the rules and routes indexes when no DestinationRule (VirtualService)
    changed. Unchanged objects keep their identity, which the xDS cache keys on.
    """
    resources = list(resources)
    inputs = tuple(r for r in resources if isinstance(r, _WORKLOAD_KINDS))
    if (
        previous is not None
        and _same_objects(previous.service_inputs, inputs)
        and previous.domain_suffix == domain_suffix
    ):
        mesh = _MeshIndex.of(previous)
    else:
        mesh = _MeshIndex.build(resources, domain_suffix, previous)
    virtual_services = tuple(sorted((r for r in resources if type(r) is VirtualService), key=_name))
    rules = tuple(sorted((r for r in resources if type(r) is DestinationRule), key=_name))
    same_suffix = previous is not None and previous.domain_suffix == domain_suffix
    if previous is not None and same_suffix and _same_objects(previous.destination_rules, rules):
        rules, rules_by_host = previous.destination_rules, previous.rules_by_host
    else:
        rules_by_host = _rules_by_host(rules, domain_suffix)
    if (
        previous is not None
        and same_suffix
        and _same_objects(previous.virtual_services, virtual_services)
    ):
        virtual_services, routing = previous.virtual_services, _RouteIndex.of(previous)
    else:
        routing = _RouteIndex.build(virtual_services, domain_suffix)
    return Snapshot(
        domain_suffix=domain_suffix,
        services=mesh.services,
        virtual_services=virtual_services,
        destination_rules=rules,
        workloads=mesh.workloads,
        rules_by_host=rules_by_host,
        routes_by_host=routing.routes_by_host,
        wildcard_routes=routing.wildcard_routes,
        source_label_keys=routing.source_label_keys,
        shared_cluster_ips=mesh.shared_cluster_ips,
        served_by=mesh.served_by,
        by_namespace=mesh.by_namespace,
        sidecars=_sidecars(resources, previous),
        root_namespace=root_namespace,
        service_inputs=inputs,
        service_memo=mesh.memo,
    )


def _sidecars(
    resources: list[Resource], previous: Snapshot | None
) -> FrozenDict[str, tuple[Sidecar, ...]]:
    """Sidecars by namespace, by name; the previous index itself when none changed."""
    found: dict[str, list[Sidecar]] = defaultdict(list)
    for r in sorted((r for r in resources if type(r) is Sidecar), key=_name):
        found[r.meta.namespace].append(r)
    index = FrozenDict({ns: tuple(s) for ns, s in sorted(found.items())})
    return previous.sidecars if previous is not None and previous.sidecars == index else index


def _rules_by_host(
    rules: tuple[DestinationRule, ...], domain_suffix: str
) -> FrozenDict[str, tuple[DestinationRule, ...]]:
    by_host: dict[str, list[DestinationRule]] = defaultdict(list)
    for rule in rules:
        by_host[resolve_host(rule.spec.host, rule.meta.namespace, domain_suffix)].append(rule)
    return FrozenDict({h: tuple(r) for h, r in sorted(by_host.items())})


@model
class _RouteIndex:
    """The VirtualServices of a snapshot by host, and the caller labels their routes match."""

    routes_by_host: FrozenDict[str, tuple[VirtualService, ...]]
    wildcard_routes: tuple[tuple[str, VirtualService], ...]
    source_label_keys: frozenset[str]

    @classmethod
    def of(cls, snapshot: Snapshot) -> _RouteIndex:
        return cls(
            routes_by_host=snapshot.routes_by_host,
            wildcard_routes=snapshot.wildcard_routes,
            source_label_keys=snapshot.source_label_keys,
        )

    @classmethod
    def build(cls, virtual_services: tuple[VirtualService, ...], domain_suffix: str) -> _RouteIndex:
        routes_by_host: dict[str, list[VirtualService]] = defaultdict(list)
        wildcards: list[tuple[str, VirtualService]] = []
        label_keys: set[str] = set()
        # Sidecars are the mesh gateway: VirtualServices bound only to other gateways are not
        # theirs (a gateway's `hosts: ["*"]` would otherwise take every host of the mesh).
        for vs in (v for v in virtual_services if v.mesh):
            for host in vs.spec.hosts:
                resolved = resolve_host(host, vs.meta.namespace, domain_suffix)
                if resolved.startswith("*"):
                    wildcards.append((resolved, vs))
                elif vs not in routes_by_host[resolved]:
                    routes_by_host[resolved].append(vs)
            for http in vs.spec.http:
                for m in http.match:
                    label_keys.update(m.source_labels)
            for tcp in vs.spec.tcp:
                for l4 in tcp.match:
                    label_keys.update(l4.source_labels)
        return cls(
            routes_by_host=FrozenDict({h: tuple(v) for h, v in sorted(routes_by_host.items())}),
            wildcard_routes=tuple(wildcards),
            source_label_keys=frozenset(label_keys),
        )


@model
class _MeshIndex:
    """The service side of a snapshot: services with endpoints, workloads, and their indexes."""

    services: FrozenDict[str, MeshService]
    workloads: FrozenDict[str, Workload]
    shared_cluster_ips: frozenset[str]
    served_by: FrozenDict[str, tuple[tuple[str, int, int], ...]]
    by_namespace: FrozenDict[str, tuple[str, ...]]
    memo: Mapping[str, tuple[Ident, ...]]

    @classmethod
    def of(cls, snapshot: Snapshot) -> _MeshIndex:
        return cls(
            services=snapshot.services,
            workloads=snapshot.workloads,
            shared_cluster_ips=snapshot.shared_cluster_ips,
            served_by=snapshot.served_by,
            by_namespace=snapshot.by_namespace,
            memo=snapshot.service_memo,
        )

    @classmethod
    def build(
        cls, resources: list[Resource], domain_suffix: str, previous: Snapshot | None
    ) -> _MeshIndex:
        workloads = _workloads(resources, previous.workloads if previous else FrozenDict())
        slices: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        entries: dict[tuple[str, str, str], list[WorkloadEntry]] = defaultdict(list)
        for r in resources:
            if isinstance(r, EndpointSlice) and r.service:
                slices[r.meta.namespace, r.service].append(r)
            elif isinstance(r, WorkloadEntry):
                for key, value in r.spec.labels.items():
                    entries[r.meta.namespace, key, value].append(r)
        services: dict[str, MeshService] = {}
        memo: dict[str, tuple[Ident, ...]] = {}
        for r in resources:
            if not isinstance(r, Service):
                continue
            hostname = r.hostname(domain_suffix)
            own = sorted(slices[r.meta.namespace, r.meta.name], key=_name)
            # A service whose Service, EndpointSlices, candidate WorkloadEntries and endpoint
            # labels are the very objects of the last build is the same service: an endpoint
            # change rebuilds its own service only.
            memo[hostname] = inputs = _service_inputs(r, own, entries, workloads)
            earlier = previous.services.get(hostname) if previous else None
            if (
                earlier is not None
                and previous is not None
                and previous.service_memo.get(hostname) == inputs
            ):
                services[hostname] = earlier
                continue
            endpoints = _slice_endpoints(r, own, workloads)
            for port, found in _entry_endpoints(r, entries).items():
                endpoints[port].extend(found)
            service = MeshService(
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
            if earlier is not None and earlier == service:
                service = earlier
            elif earlier is not None and earlier.shape == service.shape:
                service = dataclasses.replace(service, shape=earlier.shape)
            services[hostname] = service
        ips = Counter(s.cluster_ip for s in services.values() if s.cluster_ip)
        served_by: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        by_namespace: dict[str, list[str]] = defaultdict(list)
        for hostname, service in sorted(services.items()):
            by_namespace[service.namespace].append(hostname)
            for port, behind in service.endpoints.items():
                for e in behind:
                    served_by[e.address].append((hostname, port, e.port))
        return cls(
            services=FrozenDict(sorted(services.items())),
            workloads=FrozenDict(sorted(workloads.items())),
            shared_cluster_ips=frozenset(ip for ip, n in ips.items() if n > 1),
            served_by=FrozenDict({a: tuple(v) for a, v in served_by.items()}),
            by_namespace=FrozenDict({n: tuple(v) for n, v in by_namespace.items()}),
            memo=memo,
        )


def _service_inputs(
    service: Service,
    slices: list[EndpointSlice],
    entries: Mapping[tuple[str, str, str], list[WorkloadEntry]],
    workloads: Mapping[str, Workload],
) -> tuple[Ident, ...]:
    """What a MeshService is built from, by identity: equal inputs build an equal service."""
    inputs = [Ident(service), *map(Ident, slices)]
    if service.selector:
        key, value = next(iter(service.selector.items()))
        inputs.extend(map(Ident, entries.get((service.meta.namespace, key, value), ())))
    for es in slices:  # endpoints carry their workload's labels
        for e in es.endpoints:
            for address in e.addresses:
                workload = workloads.get(address)
                inputs.append(Ident(workload.labels if workload else None))
    return tuple(inputs)


def _same_objects(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _name(r: VirtualService | DestinationRule | EndpointSlice | Sidecar) -> tuple[str, str]:
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
    for ip in proxy.ips:
        for hostname, port, target in snapshot.served_by.get(ip, ()):
            service = snapshot.services[hostname]
            sp = service.port(port)
            if sp is not None:
                found.setdefault(
                    (hostname, port), Instance(service=service, port=sp, target_port=target)
                )
    # A workload whose endpoints are not published yet (not ready) still serves its ports.
    for hostname in snapshot.by_namespace.get(proxy.namespace, ()):
        service = snapshot.services[hostname]
        if not _selects(service.selector, proxy.labels):
            continue
        for sp in service.ports:
            if (hostname, sp.port) not in found and not isinstance(sp.target_port, str):
                target = sp.target_port if isinstance(sp.target_port, int) else sp.port
                found[hostname, sp.port] = Instance(service=service, port=sp, target_port=target)
    return tuple(found[k] for k in sorted(found))
