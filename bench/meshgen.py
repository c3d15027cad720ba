"""A synthetic mesh for benchmarks: N services in 10 namespaces, 3 endpoints and 2 subsets each."""

from __future__ import annotations

from ipaddress import IPv4Network

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
  address: 10.{n // 65536}.{(n // 256) % 256}.{n % 256}
  labels: {{app: {name}, version: v{1 + k % 2}}}"""
            + (f"\n  weight: {endpoint_weight}" if k == 0 and endpoint_weight != 1 else "")
        )
    return "\n---\n".join(docs) + "\n"


def mesh_yaml(services: int) -> str:
    return "---\n".join(service_yaml(i) for i in range(services))


def proxy_identity(i: int) -> tuple[str, str, str, str]:
    """(node id, namespace, ip, app) of the simulated proxy for workload i."""
    ns = f"ns-{i % NAMESPACES}"
    n = i * 3
    ip = f"10.{n // 65536}.{(n // 256) % 256}.{n % 256}"
    return f"sidecar~{ip}~svc-{i}-0.{ns}~{ns}.svc.cluster.local", ns, ip, f"svc-{i}"
