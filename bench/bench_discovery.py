"""pilot-discovery at scale: 1,000 services, 3,000 endpoints, 2 subsets each, 100 proxies.

Prints build+serialize time per distinct config, convergence from a file edit to every
proxy's new route config (100 simulated ADS clients in another process plus 3 real Envoys),
and discovery's RSS. `BENCH_SERVICES`, `BENCH_PROXIES`, `BENCH_ROUNDS` change the scale,
`BENCH_ENVOYS` the number of real Envoys, and `BENCH_REPLICAS` runs that many pilot-discovery
processes on the same configuration, the proxies spread across them (as istiod scales out).
`BENCH_SIDECARS=1` adds Istio's recommended mesh-wide default, a Sidecar in istio-system with
egress `./*` and `istio-system/*`: each proxy then holds its own namespace's services (100 of
1,000), and an edit is pushed to the proxies of the edited service's namespace only.
`BENCH_EDIT=endpoints` changes one endpoint's weight per round instead of a VirtualService:
convergence is then to each simulated proxy's new EDS (the Envoys are not timed: Envoy keeps no
per-cluster update stamp once per-cluster stats are off).
`BENCH_ENVOYS_PAUSED=1` stops the Envoys (SIGSTOP) once they are in sync: discovery still
writes to their streams, but their own work on each change no longer shares the machine, which
tells the cost of discovery and the simulated proxies apart from the Envoys'.

The bench observes the proxies, never discovery's debug endpoints: /debug/syncz lists every
subscribed resource name of every proxy (~14 MB of JSON at this scale), and polling it every
few milliseconds would load the very event loop whose latency is being measured. A real Envoy
is asked through its own admin port when it applied the new route config (its
`config_reload_time_ms` stat), so polling it seldom, and only after the push, loses no
resolution. The CPU every process spent per round is printed too: on a 2-core machine their
sum bounds how soon the last proxy can be served.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.adsclient import eds_names
from bench.meshgen import NAMESPACES, proxy_identity, service_yaml
from istiolite.api import parse_yaml
from istiolite.discovery.model import Proxy, build_snapshot
from istiolite.discovery.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Generation
from istiolite.testing.mesh import Discovery, Envoy, workdir

SERVICES = int(os.environ.get("BENCH_SERVICES", "1000"))
PROXIES = int(os.environ.get("BENCH_PROXIES", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
ENVOYS = int(os.environ.get("BENCH_ENVOYS", "3"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "1"))
ENVOYS_PAUSED = os.environ.get("BENCH_ENVOYS_PAUSED") == "1"
SIDECARS = os.environ.get("BENCH_SIDECARS") == "1"
ENDPOINT_EDITS = os.environ.get("BENCH_EDIT", "routes") == "endpoints"
EDITED_TYPE = "EDS" if ENDPOINT_EDITS else "RDS"
ROOT_SIDECAR = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
"""
PER_FILE = 20
# Envoy's own stamp of when it applied route config 8080: polling seldom loses no resolution.
ROUTE_RELOADED = r"rds\.8080\.config_reload_time_ms$"
# Envoy's admin /stats walks every stat scope (one per cluster, 3,000 here) whatever the filter:
# 10 ms of Envoy's CPU per call for gauges alone, 27 ms with text readouts. So the Envoys are
# asked only once the simulated proxies are done, and then every ENVOY_POLL: asked during the
# push, they would spend the very cores the push is measured on.
ENVOY_POLL = 0.25


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
    """The adsclient processes (one per replica), and when each proxy got each type's version."""

    def __init__(
        self,
        addresses: list[str],
        *,
        proxies: int = PROXIES,
        services: int = SERVICES,
        scoped: bool = SIDECARS,
    ) -> None:
        self.procs = []
        per = proxies // len(addresses)
        for k, address in enumerate(addresses):
            count = per if k < len(addresses) - 1 else proxies - per * k
            argv = ["-m", "bench.adsclient", address, str(per * k), str(count), str(services)]
            argv += ["scoped"] if scoped else []
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, *argv],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).parent.parent,
                )
            )
        self.seen: dict[tuple[int, str], tuple[str, float]] = {}
        # Every response in order, per proxy and type: when a push is followed by another,
        # the first one is when the proxy had the change.
        self.arrivals: dict[tuple[int, str], list[tuple[str, float]]] = {}
        self.last = 0.0  # when any proxy last got a response
        self.lock = threading.Lock()
        for proc in self.procs:
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            key, arrival = (event["p"], event["t"]), (event["v"], event["ts"])
            with self.lock:
                self.seen[key] = arrival
                self.arrivals.setdefault(key, []).append(arrival)
                self.last = max(self.last, event["ts"])

    def first_new(self, kind: str, before: dict[int, str]) -> dict[int, float]:
        """For each proxy in `before`, when it first got a version of `kind` other than that."""
        firsts = {}
        with self.lock:
            for p, old in before.items():
                for v, ts in reversed(self.arrivals[p, kind]):
                    if v == old:
                        break
                    firsts[p] = ts
        return firsts

    def responses_since(self, since: float) -> dict[str, int]:
        """How many responses of each type all proxies together got from `since` on."""
        counts: dict[str, int] = {}
        with self.lock:
            for (_, kind), arrivals in self.arrivals.items():
                counts[kind] = counts.get(kind, 0) + sum(ts >= since for _, ts in arrivals)
        return counts

    def versions(self, kind: str) -> dict[int, tuple[str, float]]:
        with self.lock:
            return {p: v for (p, t), v in self.seen.items() if t == kind}

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def route_reloaded(envoy: Envoy) -> float | None:
    """When an Envoy last applied route config 8080 (epoch seconds), by its own clock."""
    text = envoy.admin(f"/stats?type=Gauges&filter={ROUTE_RELOADED}").text
    _, _, value = text.partition(": ")
    return int(value) / 1000 if value.strip().isdigit() else None


def sees(proxy: int, service: int) -> bool:
    """Whether a proxy's config holds a service: all of them, or its namespace's (Sidecars)."""
    return not SIDECARS or proxy % NAMESPACES == service % NAMESPACES


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc (clock ticks of 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Mesh:
    """The config directory as chunks of PER_FILE services, rewritten atomically on an edit."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.weights = dict.fromkeys(range(SERVICES), 90)
        self.endpoint_weights = dict.fromkeys(range(SERVICES), 1)
        for c in range((SERVICES + PER_FILE - 1) // PER_FILE):
            self.write_chunk(c)
        if SIDECARS:
            (config / "sidecar.yaml").write_text(ROOT_SIDECAR)

    def write_chunk(self, c: int) -> None:
        last = min(SERVICES, (c + 1) * PER_FILE)
        text = "---\n".join(
            service_yaml(i, weight=self.weights[i], endpoint_weight=self.endpoint_weights[i])
            for i in range(c * PER_FILE, last)
        )
        tmp = self.config / f".chunk-{c:03d}.tmp"
        tmp.write_text(text)
        tmp.rename(self.config / f"chunk-{c:03d}.yaml")  # atomic, as kubectl-like tools write

    def edit(self, service: int) -> None:
        """Flip one VirtualService's weights (90/10 <-> 50/50), or one endpoint's (1 <-> 2)."""
        if ENDPOINT_EDITS:
            self.endpoint_weights[service] = 3 - self.endpoint_weights[service]
        else:
            self.weights[service] = 50 if self.weights[service] == 90 else 90
        self.write_chunk(service // PER_FILE)


def run_rounds(
    mesh: Mesh, sims: SimulatedProxies, envoys: list[Envoy], replicas: list[Discovery]
) -> tuple[list[float], list[float]]:
    """Edit one VirtualService per round; the time from each edit to each proxy's new RDS."""
    groups = {
        "discovery": [d.proc.pid for d in replicas if d.proc is not None],
        "simulated proxies": [p.pid for p in sims.procs],
        "Envoys": [e.proc.pid for e in envoys if e.proc is not None],
    }
    cpu_before = {g: sum(map(cpu_seconds, pids)) for g, pids in groups.items()}
    samples: list[float] = []
    envoy_samples: list[float] = []
    firsts: list[float] = []  # per round, the first proxy's time: what the push itself adds
    spurious = 0  # pushes to proxies whose Sidecar hides the edited service
    for r in range(ROUNDS):
        edited = (r * 37) % SERVICES
        everyone = {p: v for p, (v, _) in sims.versions(EDITED_TYPE).items()}
        before = {p: v for p, v in everyone.items() if sees(p, edited)}
        timed = [] if ENDPOINT_EDITS else envoys
        targets = [e for k, e in enumerate(timed) if sees(PROXIES + k, edited)]
        envoy_before = [route_reloaded(e) for e in targets]
        t0 = time.time()
        mesh.edit(edited)
        deadline = time.monotonic() + 30
        envoy_done: dict[int, float] = {}
        envoy_poll = 0.0
        while time.monotonic() < deadline:
            now = sims.versions(EDITED_TYPE)
            sims_done = all(now[p][0] != before[p] for p in before)
            if sims_done and time.monotonic() >= envoy_poll:
                envoy_poll = time.monotonic() + ENVOY_POLL
                for k, e in enumerate(targets):
                    current = route_reloaded(e) if k not in envoy_done else None
                    if current is not None and current != envoy_before[k]:
                        envoy_done[k] = current
            if sims_done and len(envoy_done) == len(targets):
                break
            time.sleep(0.02)
        spurious += sum(now[p][0] != v for p, v in everyone.items() if p not in before)
        got = [now[p][1] - t0 for p in before if now[p][0] != before[p]]
        samples.extend(got)
        firsts.append(min(got))
        envoy_samples.extend(t - t0 for t in envoy_done.values())
        time.sleep(0.3)
    print(f"first simulated proxy of each round: p50 {1000 * statistics.median(firsts):.0f} ms")
    if SIDECARS:
        print(f"new {EDITED_TYPE} sent to proxies outside the edited namespace: {spurious}")
    # Where the machine's time goes per round: on 2 cores, what every process together spends
    # bounds how soon the last proxy can have its config.
    per_round = {
        g: 1000 * (sum(map(cpu_seconds, pids)) - cpu_before[g]) / ROUNDS
        for g, pids in groups.items()
    }
    print(
        "CPU per round: "
        + ", ".join(f"{g} {ms:.0f} ms" for g, ms in per_round.items())
        + f"; total {sum(per_round.values()):.0f} ms"
    )
    return samples, envoy_samples


def report(samples: list[float], envoy_samples: list[float], replicas: list[Discovery]) -> None:
    def ms(values: list[float], p: float) -> str:
        return f"{1000 * percentile(values, p):.0f} ms"

    print(
        f"convergence file edit -> new {EDITED_TYPE}, {len(samples)} simulated-proxy samples: "
        f"p50 {ms(samples, 50)}, p99 {ms(samples, 99)}, max {1000 * max(samples):.0f} ms"
    )
    if envoy_samples:
        print(
            f"convergence file edit -> RDS applied, {len(envoy_samples)} real-Envoy samples: "
            f"p50 {ms(envoy_samples, 50)}, p99 {ms(envoy_samples, 99)}"
        )
    print(f"discovery RSS after the rounds: {_rss(replicas)}")
    count = total = 0.0
    for discovery in replicas:
        metrics = discovery.metrics()
        count += metrics.get("pilot_proxy_convergence_time_count", 0)
        total += metrics.get("pilot_proxy_convergence_time_sum", 0)
    if count:
        mean = 1000 * total / count
        print(f"pilot_proxy_convergence_time (discovery's view): mean {mean:.0f} ms, n={count:.0f}")
    print(f"median of the simulated samples: {1000 * statistics.median(samples):.0f} ms")


def _rss(replicas: list[Discovery]) -> str:
    return " + ".join(f"{rss_mb(d.proc.pid):.0f} MB" for d in replicas if d.proc is not None)


def main() -> None:
    print(
        f"{SERVICES} services, {3 * SERVICES} endpoints, 2 subsets each; "
        f"{PROXIES} simulated proxies + {ENVOYS} Envoys"
    )
    build_times()
    with workdir() as work:
        config = work / "config"
        config.mkdir()
        mesh = Mesh(config)
        started = time.perf_counter()
        replicas = []
        for k in range(REPLICAS):
            home = work / f"replica-{k}"
            home.mkdir()
            replicas.append(Discovery(config, home).start())
        processes = f"{REPLICAS} process{'es' if REPLICAS > 1 else ''}"
        print(f"discovery ready in {time.perf_counter() - started:.1f} s ({processes})")
        sims = SimulatedProxies([d.address for d in replicas])
        envoys = []
        for k in range(ENVOYS):
            _, ns, ip, app = proxy_identity(PROXIES + k)
            name, labels = f"envoy-{k}", {"app": app}
            address = replicas[k % REPLICAS].address
            envoy = Envoy(address, work, name=name, namespace=ns, ip=ip, labels=labels)
            envoys.append(envoy.start())
        try:
            started = time.perf_counter()
            while len(sims.versions("RDS")) < PROXIES or not all(map(route_reloaded, envoys)):
                time.sleep(0.1)
                if time.perf_counter() - started > 600:
                    raise TimeoutError("proxies never synced")
            print(
                f"all {PROXIES + ENVOYS} proxies synced in {time.perf_counter() - started:.1f} s; "
                f"discovery RSS {_rss(replicas)}"
            )
            if ENVOYS_PAUSED:
                for e in envoys:
                    assert e.proc is not None
                    e.proc.send_signal(signal.SIGSTOP)
                print(f"{len(envoys)} Envoys paused: connected, doing nothing")
            samples, envoy_samples = run_rounds(
                mesh, sims, [] if ENVOYS_PAUSED else envoys, replicas
            )
            report(samples, envoy_samples, replicas)
        finally:
            if os.environ.get("BENCH_KEEP_LOG"):
                Path(os.environ["BENCH_KEEP_LOG"]).write_text(replicas[0].log.read_text())
            sims.stop()
            for e in envoys:
                if ENVOYS_PAUSED and e.proc is not None:
                    e.proc.send_signal(signal.SIGCONT)
                e.stop()
            for discovery in replicas:
                discovery.stop()
