"""What the end-to-end scenarios need from a cluster, and nothing more.

The scenarios (`test_scenarios.py`) are written against this protocol so that the same tests
run on the demo's network namespaces today (`istiolite.demo.NetnsCluster`) and on kind later.
Workloads are named by their Deployment (`reviews-v2`); "from workload X" means from inside
X's pod, through X's sidecar. On kind: `kubectl exec` into a pod of the Deployment and run
`istiolite/demo/loadclient.py` there (the sample image has Python and aiohttp).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Protocol

from istiolite.demo.loadclient import Reply

__all__ = ["Cluster", "Reply", "metric_total"]


class Cluster(Protocol):
    def deploy_sample(self) -> object:
        """Deploy the bookinfo sample with sidecars and the control plane."""

    def wait_ready(self, *, timeout: float = ...) -> None:
        """Until the control plane, every sidecar and app are ready, and productpage works."""

    def apply(self, config: str | Path) -> list[str]:
        """Apply Istio YAML (text or a file), as `kubectl apply -f`."""

    def delete(self, config: str | Path) -> list[str]:
        """Delete what the YAML names, as `kubectl delete -f`."""

    def reset(self) -> None:
        """Back to the sample as deployed: no VirtualService or DestinationRule, no app knobs."""

    def request(
        self,
        from_workload: str,
        url: str,
        *,
        n: int = 1,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        body: Any = None,
        concurrency: int = 1,
        timeout: float = 10.0,
    ) -> list[Reply]:
        """Send `n` requests from inside the workload (`concurrency` at a time)."""

    def kill_envoy(self, workload: str, sig: signal.Signals = ...) -> list[int]:
        """Signal the workload's Envoy process (SIGKILL, SIGSTOP, ...)."""

    def app_instance(self, workload: str) -> str:
        """An identity of the app process (pid and start; a container id): changes on restart."""

    def agent_metrics(self, workload: str) -> dict[str, float]:
        """The sidecar agent's /stats/prometheus: {"name{labels}": value}."""

    def stop_discovery(self) -> None:
        """Stop the control plane (pilot-discovery) entirely."""

    def start_discovery(self, *, timeout: float = ...) -> None:
        """Start it again; returns once it answers /ready."""

    def connected_proxies(self) -> list[str]:
        """Proxy ids the control plane has an ADS stream with (its /debug/syncz)."""


def metric_total(metrics: dict[str, float], name: str) -> float:
    """The sum of a metric over all its label sets (`name` or `name{...}`)."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))
