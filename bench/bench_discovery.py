"""pilot-discovery at scale: 1,000 services, 3,000 endpoints, 2 subsets each, 100 proxies.

Prints build+serialize time per distinct config, convergence from a file edit to every
proxy's ACK (100 simulated ADS clients in another process plus 3 real Envoys), and
discovery's RSS. `BENCH_SERVICES`, `BENCH_PROXIES`, `BENCH_ROUNDS` change the scale.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.adsclient import eds_names
from bench.meshgen import proxy_identity, service_yaml
from istiolite.api import parse_yaml
from istiolite.discovery.model import Proxy, build_snapshot
from istiolite.discovery.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Generation
from istiolite.testing.mesh import Discovery, Envoy, workdir

SERVICES = int(os.environ.get("BENCH_SERVICES", "1000"))
PROXIES = int(os.environ.get("BENCH_PROXIES", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
ENVOYS = 3
PER_FILE = 20


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def build_times() -> None:
    text = "---\n".join(service_yaml(i) for i in range(SERVICES))
    started = time.perf_counter()
    resources = [p.resource for p in parse_yaml(text) if p.resource]
    parse_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    snapshot = build_snapshot(resources)
    snapshot_ms = (time.perf_counter() - started) * 1000
    node_id, ns, ip, app = proxy_identity(0)
    proxy = Proxy.from_node(node_id, {"NAMESPACE": ns, "INSTANCE_IPS": ip, "LABELS": {"app": app}})
    print(f"parse {len(resources)} resources: {parse_ms:.0f} ms; snapshot: {snapshot_ms:.0f} ms")
    names = {ENDPOINT: frozenset(eds_names(SERVICES)), ROUTE: frozenset({"8080"})}
    generation = Generation(snapshot, 1)
    for type_url in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        started = time.perf_counter()
        _, body = generation.respond(type_url, proxy, names.get(type_url, frozenset()))
        ms = (time.perf_counter() - started) * 1000
        size = len(body or b"") / 1e6
        print(f"build+serialize {type_url.rsplit('.', 1)[-1]:<22} {ms:7.1f} ms  {size:5.2f} MB")


class SimulatedProxies:
    """The adsclient process, and the time each proxy last received each type's version."""

    def __init__(self, address: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.adsclient", address, "0", str(PROXIES), str(SERVICES)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        self.seen: dict[tuple[int, str], tuple[str, float]] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                self.seen[event["p"], event["t"]] = (event["v"], event["ts"])

    def versions(self, kind: str) -> dict[int, tuple[str, float]]:
        with self.lock:
            return {p: v for (p, t), v in self.seen.items() if t == kind}

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    print(f"{SERVICES} services, {3 * SERVICES} endpoints, 2 subsets each; {PROXIES} simulated proxies + {ENVOYS} Envoys")
    build_times()
    with workdir() as work:
        config = work / "config"
        config.mkdir()
        weights = {i: 90 for i in range(SERVICES)}

        def write_chunk(c: int) -> None:
            text = "---\n".join(service_yaml(i, weight=weights[i]) for i in range(c * PER_FILE, min(SERVICES, (c + 1) * PER_FILE)))
            tmp = config / f".chunk-{c:03d}.tmp"
            tmp.write_text(text)
            tmp.rename(config / f"chunk-{c:03d}.yaml")  # atomic, as kubectl-like tools write

        for c in range((SERVICES + PER_FILE - 1) // PER_FILE):
            write_chunk(c)
        started = time.perf_counter()
        discovery = Discovery(config, work).start()
        print(f"discovery ready in {time.perf_counter() - started:.1f} s")
        sims = SimulatedProxies(discovery.address)
        envoys = []
        for k in range(ENVOYS):
            node_id, ns, ip, app = proxy_identity(PROXIES + k)
            envoys.append(Envoy(discovery.address, work, name=f"envoy-{k}", namespace=ns, ip=ip, labels={"app": app}).start())
        try:
            started = time.perf_counter()
            while len(sims.versions("RDS")) < PROXIES or not _envoys_synced(discovery, ENVOYS):
                time.sleep(0.1)
                if time.perf_counter() - started > 600:
                    raise TimeoutError("proxies never synced")
            print(f"all {PROXIES + ENVOYS} proxies synced in {time.perf_counter() - started:.1f} s; discovery RSS {rss_mb(discovery.proc.pid):.0f} MB")  # type: ignore[union-attr]
            samples: list[float] = []
            envoy_samples: list[float] = []
            for r in range(ROUNDS):
                before = {p: v for p, (v, _) in sims.versions("RDS").items()}
                envoy_before = _envoy_rds(discovery)
                service = (r * 37) % SERVICES
                weights[service] = 50 if weights[service] == 90 else 90
                t0 = time.time()
                write_chunk(service // PER_FILE)
                deadline = time.monotonic() + 30
                envoy_done: dict[str, float] = {}
                while time.monotonic() < deadline:
                    now = sims.versions("RDS")
                    rows = _envoy_rds(discovery)
                    for proxy_id, acked in rows.items():
                        if acked != envoy_before.get(proxy_id) and proxy_id not in envoy_done:
                            envoy_done[proxy_id] = time.time()
                    if all(now[p][0] != before[p] for p in before) and len(envoy_done) == ENVOYS:
                        break
                    time.sleep(0.005)
                samples.extend(now[p][1] - t0 for p in before if now[p][0] != before[p])
                envoy_samples.extend(t - t0 for t in envoy_done.values())
                time.sleep(0.3)
            print(
                f"convergence file edit -> ACK, {len(samples)} simulated-proxy samples: "
                f"p50 {1000 * percentile(samples, 50):.0f} ms, p99 {1000 * percentile(samples, 99):.0f} ms, "
                f"max {1000 * max(samples):.0f} ms"
            )
            print(
                f"convergence file edit -> ACK, {len(envoy_samples)} real-Envoy samples (polled every 5 ms): "
                f"p50 {1000 * percentile(envoy_samples, 50):.0f} ms, p99 {1000 * percentile(envoy_samples, 99):.0f} ms"
            )
            print(f"discovery RSS after the rounds: {rss_mb(discovery.proc.pid):.0f} MB")  # type: ignore[union-attr]
            metrics = discovery.metrics()
            count = metrics.get("pilot_proxy_convergence_time_count", 0)
            total = metrics.get("pilot_proxy_convergence_time_sum", 0)
            if count:
                print(f"pilot_proxy_convergence_time (discovery's own view): mean {1000 * total / count:.0f} ms over {count:.0f}")
            print(f"median of per-round medians: {1000 * statistics.median(samples):.0f} ms")
        finally:
            if os.environ.get("BENCH_KEEP_LOG"):
                Path(os.environ["BENCH_KEEP_LOG"]).write_text(discovery.log.read_text())
            sims.stop()
            for e in envoys:
                e.stop()
            discovery.stop()


def _envoy_rds(discovery: Discovery) -> dict[str, str]:
    rows = discovery.syncz()["proxies"]
    return {
        r["proxy"]: r["types"].get("RDS", {}).get("acked", "")
        for r in rows
        if r["proxy"] and "envoy-" in r["proxy"]
    }


def _envoys_synced(discovery: Discovery, count: int) -> bool:
    rows = [r for r in discovery.syncz()["proxies"] if r["proxy"] and "envoy-" in r["proxy"]]
    return len(rows) == count and all(
        r["types"].get(t, {}).get("acked") for r in rows for t in ("CDS", "EDS", "LDS", "RDS")
    )
