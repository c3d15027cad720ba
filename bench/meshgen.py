"""A synthetic mesh for benchmarks: N services in 10 namespaces, 3 endpoints and 2 subsets each."""

from __future__ import annotations

NAMESPACES = 10


def service_yaml(i: int, *, weight: int = 90, endpoint_weight: int = 1) -> str:
    ns = f"ns-{i % NAMESPACES}"
    name = f"svc-{i}"
    third = i * 3
    docs = [
        f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterIP: 10.{96 + third // 65536}.{(third // 256) % 256}.{third % 256}
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
