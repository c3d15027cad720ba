"""The demo's layout, computed from the sample's Kubernetes manifests (pure: no I/O).

Each Deployment becomes one pod-like network namespace with its own address on one bridge;
each Service gets a virtual IP (its ClusterIP) that no interface owns. The apps find services
by name through a hosts file (names -> virtual IPs), connect to a virtual IP, and the sidecar's
capture rules hand that connection to Envoy, which routes it, as kube-proxy never gets to.

Every address is in 198.18.0.0/16 (RFC 2544: benchmarking, never routed on the Internet),
on-link on the demo bridge for the host and for every namespace, and namespaces get no other
route: a packet the sidecar does not capture can only be answered by the bridge or die there.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

PREFIX = "il-"
BRIDGE = "il-br0"
SUBNET = ipaddress.IPv4Network("198.18.0.0/16")
HOST_ADDRESS = "198.18.0.1"
DISCOVERY_ADDRESS = "198.18.0.2"
FIRST_POD = ipaddress.IPv4Address("198.18.0.10")
FIRST_VIP = ipaddress.IPv4Address("198.18.1.1")
DISCOVERY_NAME = "istiod"
DOMAIN_SUFFIX = "cluster.local"
PROXY_UID = 1337


class SampleError(ValueError):
    """The sample's manifests cannot be turned into a demo (the message says which object)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One Deployment of the sample, as much of it as the demo runs: one replica."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    service_account: str
    container: str
    env: Mapping[str, str]
    port: int
    probers: Mapping[str, Any] = field(default_factory=dict)  # ISTIO_KUBE_APP_PROBERS


@dataclass(frozen=True, slots=True)
class Sample:
    workloads: tuple[Workload, ...]
    services: tuple[Mapping[str, Any], ...]  # the Service documents, as written


@dataclass(frozen=True, slots=True)
class Pod:
    """A network namespace joined to the bridge by a veth pair (`veth` is the host end)."""

    name: str
    netns: str
    veth: str
    address: str
    workload: Workload | None = None  # None for pilot-discovery's namespace


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    name: str
    namespace: str
    vip: str
    ports: tuple[int, ...]
    selector: Mapping[str, str]

    def names(self) -> tuple[str, ...]:
        """What an app may call it: short, namespaced, and fully qualified names."""
        ns = f"{self.name}.{self.namespace}"
        return (self.name, ns, f"{ns}.svc", f"{ns}.svc.{DOMAIN_SUFFIX}")


@dataclass(frozen=True, slots=True)
class Topology:
    pods: tuple[Pod, ...]
    discovery: Pod
    services: tuple[ServiceAddress, ...]
    mesh: bool  # False: bare apps, no sidecars, names resolve to pod addresses

    def pod(self, name: str) -> Pod:
        for pod in self.pods:
            if pod.name == name:
                return pod
        known = ", ".join(p.name for p in self.pods)
        raise KeyError(f"no workload {name!r} in the demo; have: {known}")

    def namespaces(self) -> tuple[Pod, ...]:
        """Every namespace the demo makes, pilot-discovery's first when there is a mesh."""
        return (self.discovery, *self.pods) if self.mesh else self.pods

    def backends(self, service: ServiceAddress) -> tuple[Pod, ...]:
        return tuple(
            p
            for p in self.pods
            if p.workload is not None
            and p.workload.namespace == service.namespace
            and _selects(service.selector, p.workload.labels)
        )


def read_sample(text: str) -> Sample:
    """The Deployments and Services of a multi-document manifest; other kinds are skipped."""
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    workloads = tuple(_workload(d) for d in docs if d.get("kind") == "Deployment")
    services = tuple(d for d in docs if d.get("kind") == "Service" and d.get("apiVersion") == "v1")
    if not workloads:
        raise SampleError("the sample has no Deployment: nothing to run")
    return Sample(workloads=workloads, services=services)


def plan(sample: Sample, *, mesh: bool = True) -> Topology:
    """Addresses and names for every workload and service, in the sample's order."""
    pods = tuple(
        Pod(
            name=w.name,
            netns=PREFIX + w.name,
            veth=f"{PREFIX}v{i}",
            address=str(FIRST_POD + i),
            workload=w,
        )
        for i, w in enumerate(sample.workloads)
    )
    discovery = Pod(DISCOVERY_NAME, PREFIX + DISCOVERY_NAME, f"{PREFIX}vd", DISCOVERY_ADDRESS)
    services = tuple(_service_address(doc, FIRST_VIP + i) for i, doc in enumerate(sample.services))
    _check_names(pods, discovery)
    return Topology(pods=pods, discovery=discovery, services=services, mesh=mesh)


def hosts_file(topology: Topology, pod: Pod) -> str:
    """/etc/hosts inside a namespace: itself, and every service by every name it has.

    With a mesh a service name is its virtual IP (Envoy picks the endpoint); without one it
    is the first pod the service selects, which is enough to check the plumbing.
    """
    lines = ["# written by `istiolite demo`; removed by `istiolite demo down`"]
    lines += ["127.0.0.1\tlocalhost", f"{pod.address}\t{pod.name}"]
    for service in topology.services:
        backends = topology.backends(service)
        if topology.mesh:
            address = service.vip
        elif backends:
            address = backends[0].address
        else:
            continue
        lines.append(f"{address}\t{' '.join(service.names())}")
    return "\n".join(lines) + "\n"


RESOLV_CONF = (
    "# written by `istiolite demo`: every demo name is in /etc/hosts; there is no DNS server\n"
    "options attempts:1 timeout:1\n"
)


def mesh_manifests(sample: Sample, topology: Topology) -> str:
    """What pilot-discovery's file registry reads: the Services with their virtual IPs as
    ClusterIPs, and one WorkloadEntry per pod (a Service selects them as it selects Pods)."""
    docs: list[Mapping[str, Any]] = []
    for doc, service in zip(sample.services, topology.services, strict=True):
        with_ip = copy.deepcopy(dict(doc))
        with_ip.setdefault("spec", {})["clusterIP"] = service.vip
        docs.append(with_ip)
    docs += [_workload_entry(p) for p in topology.pods]
    header = "# generated by `istiolite demo up` from the sample's manifests\n"
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def pod_labels_file(labels: Mapping[str, str]) -> str:
    """Labels in the downward API's format (`key="value"`), as the agent reads them."""
    return "".join(f"{key}={json.dumps(value)}\n" for key, value in sorted(labels.items()))


def _workload_entry(pod: Pod) -> Mapping[str, Any]:
    assert pod.workload is not None
    w = pod.workload
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": w.name, "namespace": w.namespace, "labels": dict(w.labels)},
        "spec": {
            "address": pod.address,
            "labels": dict(w.labels),
            "ports": {"http": w.port},
            "serviceAccount": w.service_account,
        },
    }


def _workload(doc: Mapping[str, Any]) -> Workload:
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    where = f"Deployment {name or '<unnamed>'}"
    pod_spec = _get(doc, ("spec", "template", "spec"), where)
    containers = pod_spec.get("containers") or []
    if not name or not containers:
        raise SampleError(f"{where}: needs metadata.name and at least one container")
    container = containers[0]
    ports = [p.get("containerPort") for p in container.get("ports") or []]
    if not ports or not isinstance(ports[0], int):
        raise SampleError(f"{where}: spec.template.spec.containers[0].ports[0].containerPort")
    labels = _get(doc, ("spec", "template", "metadata", "labels"), where)
    env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    return Workload(
        name=name,
        namespace=meta.get("namespace", "default"),
        labels={str(k): str(v) for k, v in labels.items()},
        service_account=pod_spec.get("serviceAccountName", "default"),
        container=container.get("name", name),
        env=env,
        port=ports[0],
        probers=_probers(container),
    )


def _probers(container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's probes, as the injector hands them to the agent (path -> probe)."""
    kinds = {"livenessProbe": "livez", "readinessProbe": "readyz", "startupProbe": "startupz"}
    name = container.get("name", "app")
    return {
        f"/app-health/{name}/{kind}": container[field_name]
        for field_name, kind in kinds.items()
        if isinstance(container.get(field_name), dict)
    }


def _service_address(doc: Mapping[str, Any], vip: ipaddress.IPv4Address) -> ServiceAddress:
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    if not meta.get("name"):
        raise SampleError("a Service has no metadata.name")
    return ServiceAddress(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        vip=str(vip),
        ports=tuple(int(p["port"]) for p in spec.get("ports") or []),
        selector={str(k): str(v) for k, v in (spec.get("selector") or {}).items()},
    )


def _get(doc: Mapping[str, Any], path: Iterable[str], where: str) -> Mapping[str, Any]:
    value, walked = doc, []
    for key in path:
        walked.append(key)
        child = value.get(key)
        if not isinstance(child, Mapping):
            raise SampleError(f"{where}: {'.'.join(walked)} is missing or not a mapping")
        value = child
    return value


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _check_names(pods: tuple[Pod, ...], discovery: Pod) -> None:
    names = [p.name for p in pods]
    if discovery.name in names or len(set(names)) != len(names):
        raise SampleError(f"workload names must be unique and not {discovery.name!r}: {names}")
    if len(pods) > 200:
        raise SampleError(f"{len(pods)} workloads: the demo addresses at most 200")
    for pod in pods:
        # Network namespace names become file names under /run/netns and /etc/netns.
        if not pod.name.replace("-", "").isalnum():
            raise SampleError(f"workload name {pod.name!r}: use letters, digits and '-'")
