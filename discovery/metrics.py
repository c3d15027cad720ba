"""pilot-discovery's metrics, with Istio's names where the meaning is the same."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per server, so tests can run several servers in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pushes = Counter(
            "pilot_xds_pushes", "xDS responses sent, by type.", ["type"], registry=r
        )
        self.rejects = Counter(
            "pilot_total_xds_rejects",
            "xDS responses rejected (NACKed) by proxies, by type.",
            ["type"],
            registry=r,
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
            registry=r,
        )
        self.snapshots = Counter(
            "pilot_xds_snapshots", "Mesh snapshots built after changes.", registry=r
        )
