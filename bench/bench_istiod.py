"""istiolite beside Istio's istiod: the same mesh, proxies, edits and machine, one after the other.

For each control plane in turn (`BENCH_SYSTEMS`, default `istiolite,istiod`; `istiod-tuned`
is istiod with its stream and push throttles lifted, planes.ISTIOD_TUNED):

1. a fresh etcd and kube-apiserver (istiod writes into its apiserver: CA root ConfigMaps,
   leases, its CA's Secret), the control plane's own CRDs, and the mesh: `BENCH_SERVICES`
   Services (1,000) in 10 namespaces, each with an EndpointSlice, three Pods, a
   DestinationRule with two subsets and a VirtualService splitting 90/10;
2. the control plane, from its start until it answers /ready (ready time);
3. `BENCH_PROXIES` simulated proxies (100; bench.adsclient, one process, a stream each) and
   `BENCH_ENVOYS` real Envoys (3), until every one holds CDS, EDS, LDS and RDS (initial sync);
4. `BENCH_ROUNDS` rounds (20) of each edit, written through the Kubernetes API, each timed
   from the write until every proxy that should see it has received (and at once ACKed) the
   type it changes: a VirtualService weight flip (RDS), an endpoint's readiness (EDS), a new
   Service (CDS); then Istio's recommended mesh-wide Sidecar (egress `./*`, `istio-system/*`)
   and the weight flip again, where only the edited namespace's proxies should get anything;
5. the injection webhook, the same AdmissionReview over TLS as `bench_inject`: latency one
   request at a time, then requests per CPU-second of the control plane with 4 connections.

Each phase's CPU is the control plane's user+system time over its rounds, divided by the rounds;
a round ends once no proxy has got anything for 0.3 s, so all a push does is counted in its round
(and idle work during that pause too). RSS and anonymous RSS are
read from /proc: at idle once the proxies are in sync, and at peak (the kernel's high-water mark
for RSS; anonymous RSS sampled every 100 ms).

Every program listens on loopback only: the control planes' addresses are all 127.0.0.1 (and
checked from /proc after start and at the end), and each Envoy runs in a network namespace of
its own (bench.netenvoy), where its `0.0.0.0` listeners are that namespace's loopback.

Prints one table, both systems and the ratio istiolite / istiod on every row, and writes it
with the date, versions and machine into `BENCH_DOC` (docs/benchmarks.md; empty: not written),
between markers, so that the text around it stays. Small scales for trying it out:
`BENCH_SERVICES=100 BENCH_PROXIES=10 BENCH_ENVOYS=1 BENCH_ROUNDS=5 BENCH_DOC=`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, AsyncClient, KubeConfig, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ConfigMap, Pod
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

from bench import meshgen
from bench.bench_discovery import SimulatedProxies, cpu_seconds, percentile
from bench.bench_inject import Connection, pod, review
from bench.netenvoy import envoy_in_namespace
from bench.planes import (
    ISTIO_NAMESPACE,
    ISTIOD_TUNED,
    REPO,
    WEBHOOK_HOST,
    Plane,
    Running,
    crd_manifests,
    istiod_binary,
    istiod_plane,
    istiolite_plane,
    mesh_wide_objects,
)
from istiolite import __version__
from istiolite.testing.apiserver import Binaries, control_plane
from istiolite.testing.mesh import Envoy, envoy_binary, workdir

SERVICES = int(os.environ.get("BENCH_SERVICES", "1000"))
PROXIES = int(os.environ.get("BENCH_PROXIES", "100"))
ENVOYS = int(os.environ.get("BENCH_ENVOYS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "istiolite,istiod").split(",")
DOC = os.environ.get("BENCH_DOC", str(REPO / "docs" / "benchmarks.md"))
# A directory: each phase of istiolite is sampled with py-spy (`--gil`: only the thread holding
# the GIL, which is what serializes discovery), as collapsed stacks, one file per phase.
# BENCH_PROFILE_ARGS adds py-spy options (`--native` shows the C frames: the garbage collector).
PROFILE = os.environ.get("BENCH_PROFILE", "")
PROFILE_ARGS = os.environ.get("BENCH_PROFILE_ARGS", "").split()
WEBHOOK_REQUESTS = int(os.environ.get("BENCH_WEBHOOK_REQUESTS", "2000"))
WEBHOOK_WARMUP = 200
WEBHOOK_SECONDS = 5.0
WEBHOOK_CONNECTIONS = 4
CONCURRENCY = 32  # API writes in flight while the mesh is written
SETTLE = 5.0  # seconds after the initial sync before the idle figures are read
ROUND_GAP = 0.3
ROUND_TIMEOUT = 30.0
# Envoy's admin /stats walks every stat scope, costing the Envoy CPU the push is measured on:
# the Envoys are asked only once the simulated proxies are done, then every ENVOY_POLL.
ENVOY_POLL = 0.25
# Envoy's stamps (ms since the epoch) of having applied route config 8080, and CDS. The route
# stat's name starts with the listener's stat prefix, which differs between the two planes.
ROUTES_APPLIED = r"\.rds\.8080\.config_reload_time_ms$"
CLUSTERS_APPLIED = r"^cluster_manager\.cds\.update_time$"

VirtualService = create_namespaced_resource(
    "networking.istio.io", "v1", "VirtualService", "virtualservices"
)
create_namespaced_resource("networking.istio.io", "v1", "DestinationRule", "destinationrules")
create_namespaced_resource("networking.istio.io", "v1", "Sidecar", "sidecars")
create_namespaced_resource("security.istio.io", "v1", "PeerAuthentication", "peerauthentications")


# --- what is measured ----------------------------------------------------------------------


@dataclass
class Phase:
    """One kind of edit over its rounds: when each proxy had it, and what it cost."""

    samples: list[float] = field(default_factory=list)  # seconds, write -> simulated proxy
    envoy_samples: list[float] = field(default_factory=list)  # write -> an Envoy applied it
    firsts: list[float] = field(default_factory=list)  # per round, the first proxy's
    cpu: dict[str, float] = field(default_factory=dict)  # seconds per round, by process group
    responses: dict[str, float] = field(default_factory=dict)  # per round, by type, all proxies
    anon_peak: float = 0.0  # the control plane's anonymous RSS at its highest in the phase
    spurious: int = 0  # responses to proxies that should not have got one
    missing: int = 0  # proxies that did not get the change within ROUND_TIMEOUT


@dataclass
class Result:
    system: str
    version: str
    ready: float = 0.0
    sync: float = 0.0
    sync_sims: float = 0.0
    sync_scoped: float = 0.0
    refused: int = 0  # streams the control plane ended during the initial sync, opened again
    phases: dict[str, Phase] = field(default_factory=dict)
    rss_idle: float = 0.0
    anon_idle: float = 0.0
    rss_peak: float = 0.0
    anon_peak: float = 0.0
    webhook_p50: float = 0.0
    webhook_p99: float = 0.0
    webhook_per_cpu: float = 0.0
    listening: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)


class Memory:
    """A process's RSS and anonymous RSS (MB), with the anonymous peak sampled every 100 ms,
    over its life and since `window` was last set (to tell which phase made the peak)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.anon_peak, self.window, self.stopped = pid, 0.0, 0.0, False
        threading.Thread(target=self._sample, daemon=True).start()

    def read(self) -> dict[str, float]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {
            k: int(fields[k].split()[0]) / 1024
            for k in ("VmRSS", "RssAnon", "VmHWM")
            if k in fields
        }

    def _sample(self) -> None:
        while not self.stopped:
            with contextlib.suppress(OSError, KeyError):
                anon = self.read()["RssAnon"]
                self.anon_peak, self.window = max(self.anon_peak, anon), max(self.window, anon)
            time.sleep(0.1)


# --- the edits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    title: str
    xds: str  # the type every proxy that sees the edit must receive
    apply: Callable[[AsyncClient, int], Awaitable[None]]
    envoy_stat: str | None  # Envoy's stamp of having applied it; None: Envoys not timed
    new_service: bool = False
    scoped: bool = False


class Mesh:
    """The mesh's mutable state in the apiserver, and the edits the rounds make."""

    def __init__(self) -> None:
        self.weights = dict.fromkeys(range(SERVICES), 90)
        self.first_ready = dict.fromkeys(range(SERVICES), True)

    async def flip_weights(self, kube: AsyncClient, i: int) -> None:
        self.weights[i] = 50 if self.weights[i] == 90 else 90
        spec = meshgen.virtual_service_spec(i, weight=self.weights[i])
        await kube.patch(
            VirtualService, f"svc-{i}", {"spec": spec}, namespace=_ns(i), patch_type=PatchType.MERGE
        )

    async def flip_endpoint(self, kube: AsyncClient, i: int) -> None:
        self.first_ready[i] = not self.first_ready[i]
        endpoints = meshgen.endpoint_slice(i, first_ready=self.first_ready[i])["endpoints"]
        await kube.patch(
            EndpointSlice,
            f"svc-{i}-mesh",
            {"endpoints": endpoints},
            namespace=_ns(i),
            patch_type=PatchType.MERGE,
        )

    async def add_service(self, kube: AsyncClient, i: int) -> None:
        await kube.create(codecs.from_dict(meshgen.kube_service(i)))
        await kube.create(codecs.from_dict(meshgen.endpoint_slice(i, pods=False)))

    def edits(self) -> list[Edit]:
        return [
            Edit("VirtualService weight flip", "RDS", self.flip_weights, ROUTES_APPLIED),
            Edit("endpoint readiness change", "EDS", self.flip_endpoint, None),
            Edit("new Service", "CDS", self.add_service, CLUSTERS_APPLIED, new_service=True),
        ]

    def scoped_edit(self) -> Edit:
        title = "weight flip under a Sidecar"
        return Edit(title, "RDS", self.flip_weights, ROUTES_APPLIED, scoped=True)


def _ns(i: int) -> str:
    return f"ns-{i % meshgen.NAMESPACES}"


def sees(proxy: int, service: int, *, scoped: bool) -> bool:
    """Whether a proxy's config holds a service: all of them, or its namespace's (Sidecar)."""
    return not scoped or proxy % meshgen.NAMESPACES == service % meshgen.NAMESPACES


# --- writing the mesh ----------------------------------------------------------------------


async def bounded(calls: list[Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Awaitable[Any]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


async def install_crds(kube: AsyncClient, manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        crd = CustomResourceDefinition.from_dict(manifest)
        await kube.apply(crd, force=True)  # type: ignore[call-overload]
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        await kube.wait(CustomResourceDefinition, name, for_conditions=["Established"])


async def populate(kube: AsyncClient) -> None:
    started = time.perf_counter()
    names = [ISTIO_NAMESPACE] + [f"ns-{n}" for n in range(meshgen.NAMESPACES)]
    await bounded([kube.create(codecs.from_dict(meshgen.namespace(n))) for n in names])
    objects = [
        obj
        for i in range(SERVICES)
        for obj in (
            meshgen.kube_service(i),
            meshgen.endpoint_slice(i),
            *(meshgen.pod(i, k) for k in range(3)),
            meshgen.destination_rule(i),
            meshgen.virtual_service(i),
        )
    ]
    await bounded([kube.create(codecs.from_dict(obj)) for obj in objects])
    await bounded(
        [
            kube.patch(
                Pod.Status,
                f"svc-{i}-{k}",
                meshgen.pod_status(i, k),
                namespace=_ns(i),
                patch_type=PatchType.MERGE,
            )
            for i in range(SERVICES)
            for k in range(3)
        ]
    )
    elapsed = time.perf_counter() - started
    total = len(names) + len(objects) + 3 * SERVICES
    print(f"  wrote {total} objects in {elapsed:.1f} s", flush=True)


# --- the proxies ---------------------------------------------------------------------------


def envoy_applied(envoy: Envoy, stat: str) -> float | None:
    """When an Envoy last applied what `stat` stamps (epoch seconds), by its own clock."""
    try:
        text = envoy.admin(f"/stats?type=Gauges&filter={stat}").text
    except httpx.TransportError:  # not up yet
        return None
    values = (line.partition(": ")[2] for line in text.splitlines())
    latest = max((int(v) for v in values if v.isdigit()), default=0)
    return latest / 1000 if latest else None


async def wait_synced(sims: SimulatedProxies, envoys: list[Envoy], *, since: float) -> float:
    """Seconds from `since` until every proxy holds all four types."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        held = [len(sims.versions(t)) for t in ("CDS", "EDS", "LDS", "RDS")]
        if min(held) == PROXIES and all(envoy_applied(e, ROUTES_APPLIED) for e in envoys):
            return time.monotonic() - since
        await asyncio.sleep(0.05)
    raise TimeoutError(f"proxies never synced: {held} of {PROXIES} simulated per type")


async def wait_envoys_changed(envoys: list[Envoy], stat: str, before: list[float | None]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(envoy_applied(e, stat) != b for e, b in zip(envoys, before, strict=True)):
            return
        await asyncio.sleep(ENVOY_POLL)
    raise TimeoutError("the Envoys never applied the Sidecar")


@contextlib.contextmanager
def envoys_for(plane: Plane, work: Path) -> Iterator[list[Envoy]]:
    """The real Envoys: workloads PROXIES.. of the mesh, each in its own network namespace."""
    with contextlib.ExitStack() as stack:
        envoys = []
        for k in range(ENVOYS):
            _, ns, ip, app = meshgen.proxy_identity(PROXIES + k)
            envoys.append(
                stack.enter_context(
                    envoy_in_namespace(
                        plane.grpc_port,
                        work,
                        name=f"svc-{PROXIES + k}-0",
                        namespace=ns,
                        ip=ip,
                        labels={"app": app, "version": "v1"},
                    )
                )
            )
        yield envoys


# --- the rounds ----------------------------------------------------------------------------


async def run_phase(
    edit: Edit,
    kube: AsyncClient,
    *,
    sims: SimulatedProxies,
    envoys: list[Envoy],
    groups: dict[str, list[int]],
    memory: Memory,
    profile: int | None = None,
) -> Phase:
    """The edit's rounds; `profile`: a Python process to sample with py-spy meanwhile."""
    phase = Phase()
    memory.window = 0.0
    with profiled(edit.title, profile):
        await _rounds(phase, edit, kube=kube, sims=sims, envoys=envoys, groups=groups)
    phase.anon_peak = memory.window
    print(f"  {edit.title}: {_phase_line(phase)}", flush=True)
    return phase


@contextlib.contextmanager
def profiled(title: str, pid: int | None) -> Iterator[None]:
    """py-spy on a process while the block runs, when BENCH_PROFILE asks for it."""
    if not PROFILE or pid is None:
        yield
        return
    out = Path(PROFILE) / f"{title.replace(' ', '-')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    argv = [str(spy), "record", "--pid", str(pid), "--gil", "--rate", "200", *PROFILE_ARGS]
    if "--native" not in argv:  # C frames need the process stopped at each sample
        argv.append("--nonblocking")
    recorder = subprocess.Popen(
        [*argv, "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        recorder.wait(60)


async def _rounds(
    phase: Phase,
    edit: Edit,
    *,
    kube: AsyncClient,
    sims: SimulatedProxies,
    envoys: list[Envoy],
    groups: dict[str, list[int]],
) -> None:
    cpu_before = {g: sum(map(cpu_seconds, pids)) for g, pids in groups.items()}
    phase_start = time.time()
    for r in range(ROUNDS):
        target = SERVICES + r if edit.new_service else (r * 37) % SERVICES
        everyone = {p: v for p, (v, _) in sims.versions(edit.xds).items()}
        before = {p: v for p, v in everyone.items() if sees(p, target, scoped=edit.scoped)}
        timed = [
            e
            for k, e in enumerate(envoys)
            if edit.envoy_stat and sees(PROXIES + k, target, scoped=edit.scoped)
        ]
        stat = edit.envoy_stat or ""
        envoy_before = [envoy_applied(e, stat) for e in timed]
        envoy_done: dict[int, float] = {}
        t0 = time.time()
        await edit.apply(kube, target)
        deadline, next_poll = time.monotonic() + ROUND_TIMEOUT, 0.0
        firsts: dict[int, float] = {}
        while time.monotonic() < deadline:
            firsts = sims.first_new(edit.xds, before)
            sims_done = len(firsts) == len(before)
            if sims_done and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + ENVOY_POLL
                for k, e in enumerate(timed):
                    applied = envoy_applied(e, stat) if k not in envoy_done else None
                    if applied is not None and applied != envoy_before[k]:
                        envoy_done[k] = applied
            if sims_done and len(envoy_done) == len(timed):
                break
            await asyncio.sleep(0.01)
        phase.missing += len(before) - len(firsts) + len(timed) - len(envoy_done)
        others = {p: v for p, v in everyone.items() if p not in before}
        phase.spurious += len(sims.first_new(edit.xds, others))
        phase.samples.extend(ts - t0 for ts in firsts.values())
        phase.firsts.append(min(firsts.values(), default=t0 + ROUND_TIMEOUT) - t0)
        phase.envoy_samples.extend(t - t0 for t in envoy_done.values())
        await quiet(sims)
    phase.cpu = {
        g: (sum(map(cpu_seconds, pids)) - cpu_before[g]) / ROUNDS for g, pids in groups.items()
    }
    sent = sims.responses_since(phase_start)
    phase.responses = {t: sent.get(t, 0) / ROUNDS for t in ("CDS", "EDS", "LDS", "RDS")}


async def quiet(sims: SimulatedProxies) -> None:
    """Until no proxy has got anything for ROUND_GAP: a push may go on past the timed type (istiod
    sends other types after the one timed), and the next round should not start inside it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        since = time.time() - sims.last
        if since >= ROUND_GAP:
            return
        await asyncio.sleep(ROUND_GAP - since)


def _phase_line(phase: Phase) -> str:
    def ms(values: list[float], p: float) -> str:
        return f"{1000 * percentile(values, p):.0f}" if values else "-"

    line = (
        f"simulated p50 {ms(phase.samples, 50)} ms, p99 {ms(phase.samples, 99)} ms "
        f"(n={len(phase.samples)}); first proxy p50 {ms(phase.firsts, 50)} ms"
    )
    if phase.envoy_samples:
        line += f"; Envoys p50 {ms(phase.envoy_samples, 50)}, p99 {ms(phase.envoy_samples, 99)} ms"
    cpu = ", ".join(f"{g} {1000 * s:.0f}" for g, s in phase.cpu.items())
    line += f"; CPU ms per round: {cpu}"
    sent = ", ".join(f"{n:g} {t}" for t, n in phase.responses.items() if n)
    line += f"; responses per round: {sent or 'none'}"
    line += f"; anonymous RSS up to {phase.anon_peak:.0f} MB"
    if phase.spurious or phase.missing:
        line += f"; spurious {phase.spurious}, missing {phase.missing}"
    return line


# --- the webhook ---------------------------------------------------------------------------


async def webhook(plane: Plane, running: Running, kube: AsyncClient, work: Path) -> list[float]:
    """[p50 s, p99 s, requests per control-plane CPU-second] of the injection webhook."""
    ca_file = plane.webhook_ca
    if ca_file is None:
        ca_file = work / "istiod-root.pem"
        ca_file.write_text(await istiod_root(kube))
    context = ssl.create_default_context(cafile=ca_file)
    body = json.dumps(review(pod())).encode()
    request = (
        f"POST /inject HTTP/1.1\r\nHost: {WEBHOOK_HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    connection = await Connection.open(plane.webhook_port, context)
    for _ in range(WEBHOOK_WARMUP):
        await connection.post(request)
    times = [await connection.post(request) for _ in range(WEBHOOK_REQUESTS)]
    connection.close()
    connections = [await Connection.open(plane.webhook_port, context) for _ in range(4)]
    deadline = time.perf_counter() + WEBHOOK_SECONDS
    cpu_started = cpu_seconds(running.pid)
    counts = await asyncio.gather(*(c.post_until(request, deadline) for c in connections))
    server_cpu = cpu_seconds(running.pid) - cpu_started
    for c in connections:
        c.close()
    return [percentile(times, 50), percentile(times, 99), sum(counts) / server_cpu]


async def istiod_root(kube: AsyncClient) -> str:
    """istiod's self-signed root, as it publishes it into every namespace once it leads."""
    deadline = time.monotonic() + 120
    while True:
        try:
            root = await kube.get(ConfigMap, "istio-ca-root-cert", namespace=ISTIO_NAMESPACE)
            return str((root.data or {})["root-cert.pem"])
        except ApiError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


# --- one system ----------------------------------------------------------------------------


def plane_for(system: str, work: Path, kubeconfig: Path, binary: Path | None) -> Plane:
    if system == "istiolite":
        return istiolite_plane(work, kubeconfig)
    assert binary is not None
    return istiod_plane(
        work, kubeconfig, binary=binary, tuned=system == "istiod-tuned", name=system
    )


def measure(system: str, binary: Path | None) -> Result:
    print(f"{system}:", flush=True)
    version = __version__ if system == "istiolite" else binary.parent.name if binary else ""
    result = Result(system, version, load=list(os.getloadavg()))
    with control_plane() as apiserver, workdir() as work:
        asyncio.run(_measure(result, apiserver.kubeconfig, work, binary))
    result.load += os.getloadavg()
    return result


async def _measure(result: Result, kubeconfig: Path, work: Path, binary: Path | None) -> None:
    config = KubeConfig.from_file(kubeconfig)
    async with AsyncClient(config, field_manager="bench", trust_env=False) as kube:
        await install_crds(kube, crd_manifests(result.system, binary))
        await populate(kube)
        for obj in mesh_wide_objects(result.system):
            await kube.create(codecs.from_dict(obj))
        plane = plane_for(result.system, work, kubeconfig, binary)
        running = Running(plane)
        try:
            await _with_plane(result, running, kube, work)
        except BaseException:
            print(running.tail(), file=sys.stderr)
            raise
        finally:
            running.stop()


async def _with_plane(result: Result, running: Running, kube: AsyncClient, work: Path) -> None:
    plane, memory = running.plane, Memory(running.pid)
    python = running.pid if result.system == "istiolite" else None  # what py-spy can sample
    result.ready = running.ready_seconds
    result.listening = running.check_loopback_only()
    print(f"  ready in {result.ready:.2f} s; listening on {', '.join(result.listening)}")
    mesh = Mesh()
    started = time.monotonic()
    with envoys_for(plane, work) as envoys:
        sims = SimulatedProxies([plane.grpc_address], proxies=PROXIES, services=SERVICES)
        try:
            result.sync = await wait_synced(sims, envoys, since=started)
            result.refused = sims.responses_since(0).get("retry", 0)
            print(
                f"  {PROXIES} simulated + {ENVOYS} Envoys in sync in {result.sync:.2f} s "
                f"({result.refused} streams refused and opened again)"
            )
            await asyncio.sleep(SETTLE)
            idle = memory.read()
            result.rss_idle, result.anon_idle = idle["VmRSS"], idle["RssAnon"]
            groups = {
                "control plane": [running.pid],
                "simulated proxies": [p.pid for p in sims.procs],
                "Envoys": [e.proc.pid for e in envoys if e.proc is not None],
            }
            for edit in mesh.edits():
                result.phases[edit.title] = await run_phase(
                    edit,
                    kube,
                    sims=sims,
                    envoys=envoys,
                    groups=groups,
                    memory=memory,
                    profile=python,
                )
        finally:
            sims.stop()
        # The Sidecar phase: the proxies re-subscribe as a scoped Envoy would.
        before = [envoy_applied(e, ROUTES_APPLIED) for e in envoys]
        await kube.create(codecs.from_dict(meshgen.ROOT_SIDECAR))
        await wait_envoys_changed(envoys, ROUTES_APPLIED, before)
        started = time.monotonic()
        sims = SimulatedProxies(
            [plane.grpc_address], proxies=PROXIES, services=SERVICES, scoped=True
        )
        try:
            result.sync_scoped = await wait_synced(sims, envoys, since=started)
            groups["simulated proxies"] = [p.pid for p in sims.procs]
            edit = mesh.scoped_edit()
            result.phases[edit.title] = await run_phase(
                edit, kube, sims=sims, envoys=envoys, groups=groups, memory=memory, profile=python
            )
        finally:
            sims.stop()
    result.webhook_p50, result.webhook_p99, result.webhook_per_cpu = await webhook(
        plane, running, kube, work
    )
    print(
        f"  webhook p50 {1000 * result.webhook_p50:.2f} ms, p99 {1000 * result.webhook_p99:.2f}"
        f" ms; {result.webhook_per_cpu:,.0f} requests per CPU-second"
    )
    result.listening = running.check_loopback_only()
    memory.stopped = True
    peak = memory.read()
    result.rss_peak, result.anon_peak = peak["VmHWM"], max(memory.anon_peak, peak["RssAnon"])


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    unit: str
    value: Callable[[Result], float | None]
    goal: str = ""  # the goal for the ratio istiolite / istiod

    def ratio_meets(self, ratio: float) -> str:
        if not self.goal:
            return ""
        bound = float(self.goal[2:])
        return "yes" if (ratio <= bound if self.goal[0] == "≤" else ratio >= bound) else "no"


def rows(results: list[Result]) -> list[Row]:
    def phase(
        title: str, pick: Callable[[Phase], float | None]
    ) -> Callable[[Result], float | None]:
        return lambda r: pick(r.phases[title]) if title in r.phases else None

    def pct(values: list[float], p: float) -> float | None:
        return 1000 * percentile(values, p) if values else None

    table = [
        Row("ready (start to /ready)", "s", lambda r: r.ready),
        Row(f"initial sync, {PROXIES} simulated + {ENVOYS} Envoys", "s", lambda r: r.sync, "≤ 1"),
        Row("streams refused during the initial sync", "", lambda r: r.refused),
        Row("initial sync under the Sidecar", "s", lambda r: r.sync_scoped),
    ]
    titles = [e.title for e in (*Mesh().edits(), Mesh().scoped_edit())]
    for title in titles:
        table += [
            Row(f"{title}: p50", "ms", phase(title, lambda p: pct(p.samples, 50))),
            Row(f"{title}: p99", "ms", phase(title, lambda p: pct(p.samples, 99)), "≤ 0.8"),
            Row(f"{title}: first proxy p50", "ms", phase(title, lambda p: pct(p.firsts, 50))),
        ]
        if any(r.phases.get(title, Phase()).envoy_samples for r in results):
            table.append(
                Row(f"{title}: Envoys p99", "ms", phase(title, lambda p: pct(p.envoy_samples, 99)))
            )
        table += [
            Row(f"{title}: CPU per round", "ms", phase(title, _cpu("control plane")), "≤ 1"),
            Row(f"{title}: simulated proxies' CPU", "ms", phase(title, _cpu("simulated proxies"))),
            Row(f"{title}: responses per round", "", phase(title, _responses)),
            Row(f"{title}: anonymous RSS peak", "MB", phase(title, lambda p: p.anon_peak)),
        ]
    table += [
        Row("RSS idle", "MB", lambda r: r.rss_idle),
        Row("RSS peak", "MB", lambda r: r.rss_peak, "≤ 0.5"),
        Row("anonymous RSS idle", "MB", lambda r: r.anon_idle),
        Row("anonymous RSS peak", "MB", lambda r: r.anon_peak),
        Row("webhook p50, one at a time", "ms", lambda r: 1000 * r.webhook_p50),
        Row("webhook p99, one at a time", "ms", lambda r: 1000 * r.webhook_p99, "≤ 1"),
        Row("webhook requests per CPU-second", "", lambda r: r.webhook_per_cpu, "≥ 0.5"),
    ]
    return table


def _responses(phase: Phase) -> float:
    return sum(phase.responses.values())


def _cpu(group: str) -> Callable[[Phase], float | None]:
    return lambda p: 1000 * p.cpu[group] if group in p.cpu else None


def render(results: list[Result]) -> str:
    base = results[0]
    head = ["", *(f"{r.system}" for r in results)]
    for r in results[1:]:
        head += [f"{base.system} / {r.system}", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows(results):
        values = [row.value(r) for r in results]
        cells = [f"{row.label}" + (f" ({row.unit})" if row.unit else "")]
        cells += [_fmt(v) for v in values]
        for v in values[1:]:
            ratio = values[0] / v if values[0] is not None and v else None
            cells += [f"{ratio:.2f}" if ratio is not None else "-", row.goal]
            cells.append(row.ratio_meets(ratio) if ratio is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.2f}"


# --- the record ----------------------------------------------------------------------------

BEGIN, END = "<!-- bench_istiod: begin -->", "<!-- bench_istiod: end -->"


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.machine(),
    )
    mem = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )  # fmt: skip
    return f"{os.cpu_count()} CPUs ({model}), {mem / 1024**2:.0f} GiB, Linux {platform.release()}"


def versions(binary: Path | None) -> str:
    def first_line(*argv: str) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"

    bins = Binaries.find()
    parts = [f"istiolite {__version__} (Python {platform.python_version()})"]
    if binary is not None:
        go = first_line("go", "version", str(binary)).rsplit(" ", 1)[-1]
        parts.append(f"istiod `istio.io/istio@{binary.parent.name}` ({go})")
    envoy = first_line(envoy_binary(), "--version").split("version: ")[-1].split("/")[1]
    parts += [f"Envoy {envoy}", first_line(str(bins.kube_apiserver), "--version")]
    parts.append(first_line(str(bins.etcd), "--version"))
    return "; ".join(parts)


def commit() -> str:
    argv = ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def record(table: str, results: list[Result], binary: Path | None) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    loads = "; ".join(
        f"{r.system} {r.load[0]:.2f} → {r.load[3]:.2f}" for r in results if len(r.load) == 6
    )
    scale = (
        f"BENCH_SERVICES={SERVICES} BENCH_PROXIES={PROXIES} BENCH_ENVOYS={ENVOYS} "
        f"BENCH_ROUNDS={ROUNDS} BENCH_SYSTEMS={','.join(SYSTEMS)}"
    )
    tuned = " ".join(f"{k}={v}" for k, v in ISTIOD_TUNED.items())
    return "\n".join(
        [
            BEGIN,
            f"Measured {today} with `{scale} make bench BENCH=istiod`.",
            "",
            f"- machine: {machine()}; load average (1 min) before → after each run: {loads}",
            f"- versions: {versions(binary)}; the benchmark at commit {commit()}",
            f"- istiod-tuned: {tuned}",
            "",
            table,
            END,
        ]
    )


def write_doc(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)


def main() -> None:
    print(
        f"{SERVICES} Services in {meshgen.NAMESPACES} namespaces, {PROXIES} simulated proxies, "
        f"{ENVOYS} Envoys, {ROUNDS} rounds per edit; systems: {', '.join(SYSTEMS)}",
        flush=True,
    )
    binary = istiod_binary() if any(s.startswith("istiod") for s in SYSTEMS) else None
    results = [measure(system, binary) for system in SYSTEMS]
    table = render(results)
    print(table)
    text = record(table, results, binary)
    if DOC:
        write_doc(Path(DOC), text)
        print(f"written to {DOC}")
