"""The agent's own metrics, served on /stats/prometheus together with Envoy's.

Each agent has its own registry, so several agents can live in one process (tests do).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.restarts = Counter(
            "istio_agent_envoy_restarts",
            "Envoy restarts by the agent, by reason: crash, unhealthy (hung), reload (hot restart)",
            ["reason"],
            registry=self.registry,
        )
        self.uptime = Gauge(
            "istio_agent_envoy_uptime_seconds",
            "Seconds since Envoy was last started cold (hot restarts keep counting)",
            registry=self.registry,
        )
        self.ready = Gauge(
            "istio_agent_envoy_ready",
            "1 when the last admin poll found Envoy LIVE with listeners and clusters, else 0",
            registry=self.registry,
        )

    def track_uptime(self, uptime: Callable[[], float]) -> None:
        self.uptime.set_function(uptime)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
