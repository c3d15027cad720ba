"""/metrics speaks Istio's names, so istiod's dashboards and alerts work unchanged."""

from __future__ import annotations

import re

from istiolite.discovery.metrics import Metrics, metric_type


def test_counters_keep_istios_names_and_lowercase_types() -> None:
    metrics = Metrics()
    metrics.pushes.labels(metric_type("CDS")).inc()
    metrics.rejects.labels(metric_type("RDS")).inc(2)
    metrics.convergence.observe(0.02)
    text = metrics.exposition().decode()
    assert 'pilot_xds_pushes{type="cds"} 1.0' in text
    assert 'pilot_total_xds_rejects{type="rds"} 2.0' in text
    assert "# TYPE pilot_xds_pushes counter" in text
    names = {re.split(r"[{ ]", line)[0] for line in text.splitlines() if line[0] != "#"}
    names |= {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert not [n for n in names if n.endswith(("_total", "_created"))], sorted(names)
    assert 'pilot_proxy_convergence_time_bucket{le="0.025"} 1.0' in text


def test_a_counter_reads_back_under_its_istio_name() -> None:
    metrics = Metrics()
    metrics.snapshots.inc()
    assert metrics.registry.get_sample_value("pilot_xds_snapshots") == 1.0
