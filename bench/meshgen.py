"""A synthetic mesh for benchmarks: N services in 10 namespaces, 3 endpoints and 2 subsets each.

Two forms of the same mesh: YAML for a config directory (endpoints as WorkloadEntries), and
Kubernetes objects for an apiserver (endpoints as an EndpointSlice and Pods). Workload k of
service i has the address `workload_ip(3 * i + k)` in both, and simulated proxy i is workload 0
of service i.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from istiolite.testing.apiserver import SERVICE_CLUSTER_IP_RANGE

NAMESPACES = 10
SERVICE_CIDR = IPv4Network(SERVICE_CLUSTER_IP_RANGE)
# The apiserver refuses a CIDR's network and broadcast addresses, and gives the first address
# to the `kubernetes` Service itself; every other address may be asked for.
_FIRST_FREE = 2
SERVICE_CAPACITY = SERVICE_CIDR.num_addresses - _FIRST_FREE - 1


def cluster_ip(i: int) -> str:
    """Service i's clusterIP, inside the test apiserver's service CIDR, one per service."""
    if not 0 <= i < SERVICE_CAPACITY:
        raise ValueError(
            f"service {i} has no clusterIP: {SERVICE_CIDR} holds {SERVICE_CAPACITY} services "
            f"(svc-0 to svc-{SERVICE_CAPACITY - 1})"
        )
    return str(SERVICE_CIDR.network_address + _FIRST_FREE + i)


def workload_ip(n: int) -> str:
    return f"10.{n // 65536}.{(n // 256) % 256}.{n % 256}"


def service_yaml(i: int, *, weight: int = 90, endpoint_weight: int = 1) -> str:
    ns = f"ns-{i % NAMESPACES}"
    name = f"svc-{i}"
    docs = [
        f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterIP: {cluster_ip(i)}
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]""",
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}""",
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - route:
    - {{destination: {{host: {name}, subset: v1}}, weight: {weight}}}
    - {{destination: {{host: {name}, subset: v2}}, weight: {100 - weight}}}""",
    ]
    for k in range(3):
        n = i * 3 + k
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-{k}, namespace: {ns}}}
spec:
  address: {workload_ip(n)}
  labels: {{app: {name}, version: v{1 + k % 2}}}"""
            + (f"\n  weight: {endpoint_weight}" if k == 0 and endpoint_weight != 1 else "")
        )
    return "\n---\n".join(docs) + "\n"


def mesh_yaml(services: int) -> str:
    return "---\n".join(service_yaml(i) for i in range(services))


def proxy_identity(i: int) -> tuple[str, str, str, str]:
    """(node id, namespace, ip, app) of the simulated proxy for workload i."""
    ns = f"ns-{i % NAMESPACES}"
    ip = workload_ip(i * 3)
    return f"sidecar~{ip}~svc-{i}-0.{ns}~{ns}.svc.cluster.local", ns, ip, f"svc-{i}"


# --- the same mesh as Kubernetes objects ---------------------------------------------------

Obj = dict[str, Any]


def _meta(name: str, ns: str, **more: Any) -> Obj:
    return {"name": name, "namespace": ns, **more}


def kube_service(i: int) -> Obj:
    ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, ns),
        "spec": {
            "clusterIP": cluster_ip(i),
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
        },
    }


def endpoint_slice(i: int, *, first_ready: bool = True, pods: bool = True) -> Obj:
    """Service i's endpoints; `pods` names each endpoint's Pod, as the slice controller does."""
    ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
    endpoints = []
    for k in range(3):
        endpoint: Obj = {
            "addresses": [workload_ip(i * 3 + k)],
            "conditions": {"ready": first_ready or k > 0},
        }
        if pods:
            endpoint["targetRef"] = {"kind": "Pod", "name": f"{name}-{k}", "namespace": ns}
        endpoints.append(endpoint)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(f"{name}-mesh", ns, labels={"kubernetes.io/service-name": name}),
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def pod(i: int, k: int) -> Obj:
    ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(f"{name}-{k}", ns, labels={"app": name, "version": f"v{1 + k % 2}"}),
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }


def pod_status(i: int, k: int) -> Obj:
    """What a kubelet would report; no kubelet runs beside the benchmarks' apiserver."""
    return {
        "status": {
            "phase": "Running",
            "podIP": workload_ip(i * 3 + k),
            "podIPs": [{"ip": workload_ip(i * 3 + k)}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }


def destination_rule(i: int) -> Obj:
    ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
    subsets = [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _meta(name, ns),
        "spec": {"host": name, "subsets": subsets},
    }


def virtual_service(i: int, *, weight: int = 90) -> Obj:
    ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta(name, ns),
        "spec": virtual_service_spec(i, weight=weight),
    }


def virtual_service_spec(i: int, *, weight: int) -> Obj:
    name = f"svc-{i}"
    return {
        "hosts": [name],
        "http": [
            {
                "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                "route": [{"destination": {"host": name, "subset": "v2"}}],
            },
            {
                "route": [
                    {"destination": {"host": name, "subset": "v1"}, "weight": weight},
                    {"destination": {"host": name, "subset": "v2"}, "weight": 100 - weight},
                ]
            },
        ],
    }


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


ROOT_SIDECAR: Obj = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Sidecar",
    "metadata": _meta("default", "istio-system"),
    "spec": {"egress": [{"hosts": ["./*", "istio-system/*"]}]},
}
"""Istio's recommended mesh-wide default: each proxy holds its own namespace's services."""
