"""The agent's own metrics: hand-written Prometheus text that Prometheus' parser accepts, and a
sidecar process that loads one HTTP stack and no metrics library."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from istiolite.agent.metrics import AgentMetrics


def test_rendered_metrics_parse_as_prometheus_text() -> None:
    metrics = AgentMetrics(restart_reasons=["crash", "unhealthy", "reload"])
    metrics.count_restart("crash")
    metrics.count_restart("crash")
    metrics.ready = True
    metrics.uptime = lambda: 12.5

    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}

    restarts = {s.labels["reason"]: s.value for s in families["istio_agent_envoy_restarts"].samples}
    assert restarts == {"crash": 2.0, "reload": 0.0, "unhealthy": 0.0}
    assert families["istio_agent_envoy_restarts"].type == "counter"
    assert families["istio_agent_envoy_uptime_seconds"].samples[0].value == 12.5
    assert families["istio_agent_envoy_ready"].samples[0].value == 1.0


def test_sidecar_loads_aiohttp_only_no_httpx_metrics_library_or_grpc() -> None:
    # Each would cost every pod's agent RSS (httpx2 and its CA bundle ~6 MB, grpc ~9 MB).
    code = (
        "import sys, istiolite.agent.cli, istiolite.agent.sidecar; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(run.stdout.split())
    assert "aiohttp" in loaded
    assert not loaded & {"httpx2", "httpcore2", "prometheus_client", "grpc", "lightkube"}
