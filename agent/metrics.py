"""The agent's own metrics, served on /stats/prometheus together with Envoy's.

Three series, written out in Prometheus' text format (0.0.4) by hand: prometheus_client would
cost every sidecar ~1 MB of RSS for what is a dozen lines here. Each agent has its own
instance, so several agents can live in one process (tests do).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

RESTARTS = "istio_agent_envoy_restarts_total"
UPTIME = "istio_agent_envoy_uptime_seconds"
READY = "istio_agent_envoy_ready"


class AgentMetrics:
    def __init__(self, restart_reasons: Iterable[str] = ()) -> None:
        # Every reason is shown from the start, at 0: a rate over a missing series is empty.
        self.restarts: Counter[str] = Counter(dict.fromkeys(restart_reasons, 0))
        self.ready = False
        self.uptime: Callable[[], float] = lambda: 0.0

    def count_restart(self, reason: str) -> None:
        self.restarts[reason] += 1

    def render(self) -> str:
        lines = [
            *_header(
                RESTARTS,
                "counter",
                "Envoy restarts by the agent, by reason: crash, unhealthy (hung), "
                "reload (hot restart)",
            ),
            *(
                f'{RESTARTS}{{reason="{reason}"}} {float(count)}'
                for reason, count in sorted(self.restarts.items())
            ),
            *_header(
                UPTIME,
                "gauge",
                "Seconds since Envoy was last started cold (hot restarts keep counting)",
            ),
            f"{UPTIME} {float(self.uptime())}",
            *_header(
                READY,
                "gauge",
                "1 when the last admin poll found Envoy LIVE with listeners and clusters, else 0",
            ),
            f"{READY} {1.0 if self.ready else 0.0}",
        ]
        return "\n".join(lines) + "\n"


def _header(name: str, kind: str, doc: str) -> tuple[str, str]:
    return f"# HELP {name} {doc}", f"# TYPE {name} {kind}"
