"""pilot-discovery's metrics, with Istio's names where the meaning is the same.

Istio exposes its counters under their own names (`pilot_xds_pushes{type="cds"}`), without
the `_total` suffix prometheus_client adds to every counter, and labels xDS types in lower
case. Dashboards and alerts written for istiod must work unchanged, so the counters live in a
private registry, `registry` re-exposes their samples under Istio's names, and `exposition()`
(what /metrics serves) also names them so in the HELP and TYPE lines, where prometheus_client's
text format would append `_total` to every counter.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Istio exposes no `*_created` series; prometheus_client would add one per counter and histogram.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client 0.26 has no hints

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per server, so tests can run several servers in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        counters = CollectorRegistry(auto_describe=True)
        self._counters = _IstioCounters(counters)
        r.register(self._counters)
        self.pushes = Counter(
            "pilot_xds_pushes", "xDS responses sent, by type.", ["type"], registry=counters
        )
        self.rejects = Counter(
            "pilot_total_xds_rejects",
            "xDS responses rejected (NACKed) by proxies, by type.",
            ["type"],
            registry=counters,
        )
        self.push_time = Histogram(
            "pilot_xds_push_time",
            "Seconds to build and send one xDS response.",
            ["type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.convergence = Histogram(
            "pilot_proxy_convergence_time",
            "Seconds from a configuration change to a proxy's ACK of it.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.connected = Gauge("pilot_xds", "Connected xDS clients.", registry=r)
        self.config_errors = Gauge(
            "pilot_total_config_errors",
            "Configuration sources currently failing validation.",
            registry=r,
        )
        self.config_dir_watching = Gauge(
            "pilot_config_dir_watching",
            "1 while the --config-dir directory is watched for changes; 0 while it is gone, or "
            "its watch failed and is being started again (the log says why).",
            registry=r,
        )
        self.build_errors = Counter(
            "pilot_xds_build_errors",
            "Failures to build configuration for a proxy, by type.",
            ["type"],
            registry=counters,
        )
        self.snapshots = Counter(
            "pilot_xds_snapshots", "Mesh snapshots built after changes.", registry=counters
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric, counters under Istio's names."""
        text = generate_latest(self.registry).decode()
        for name in self._counters.names():
            for line in ("# HELP", "# TYPE"):
                text = text.replace(f"{line} {name}_total ", f"{line} {name} ")
        return text.encode()


def metric_type(short: str) -> str:
    """The `type` label Istio gives an xDS type in metrics: `cds`, `eds`, `lds`, `rds`."""
    return short.lower()


class _IstioCounters(Collector):
    """Counters as Istio exposes them: `name`, not `name_total`, and no `name_created`."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def names(self) -> list[str]:
        return [family.name for family in self.source.collect()]

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            renamed = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                if sample.name == family.name + "_total":
                    renamed.add_sample(family.name, sample.labels, sample.value)
            yield renamed
