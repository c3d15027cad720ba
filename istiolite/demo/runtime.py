"""The mesh on one machine: the sample's workloads as network namespaces, with sidecars.

`NetnsCluster` is the demo's runtime and the e2e suite's cluster (`e2e/cluster.py`): it
deploys the sample, changes routing by writing into pilot-discovery's watched directory,
sends requests from inside a workload, and breaks things on purpose (kills an Envoy, stops
pilot-discovery). Everything it makes is recorded in the state file (`state.py`) and named
with the demo's prefix, so another process, or the next run after a crash, can remove it.

Per workload (pod) it runs, as Kubernetes with Istio would:
- `pilot-agent iptables` in the namespace (the init container),
- `pilot-agent proxy sidecar` with group 1337 (the istio-proxy container; Envoy is its child
  and inherits the gid, which is how the capture rules tell Envoy's traffic from the app's).
  Its uid stays root because the interpreter may live where uid 1337 cannot read (a pyenv
  under /root); the rules match uid 1337 or gid 1337, so either identifies the proxy.
- the app, as root, with the pod's name as host name.
pilot-discovery runs in a namespace of its own, reading a directory of YAML: the sample's
Services (with virtual IPs as ClusterIPs), one WorkloadEntry per pod, and what `apply` adds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from istiolite.api import ValidationError, parse_resource
from istiolite.api.yamlstream import YamlError, load_all
from istiolite.demo import DEFAULT_SAMPLE, loadclient, network
from istiolite.demo.loadclient import BatchClient, Reply
from istiolite.demo.processes import Processes
from istiolite.demo.state import (
    DemoState,
    ProcessRecord,
    Role,
    StateStore,
    read_stat,
    topology_from_json,
    topology_to_json,
)
from istiolite.demo.topology import (
    DISCOVERY_ADDRESS,
    PROXY_UID,
    RESOLV_CONF,
    Pod,
    Sample,
    Topology,
    hosts_file,
    mesh_manifests,
    plan,
    pod_labels_file,
    read_sample,
)
from istiolite.promtext import parse_prometheus
from istiolite.sources import SourceError, read_text

SAMPLE_MANIFEST = Path("platform/kube/bookinfo.yaml")
SAMPLE_APP = Path("app/bookinfo.py")
MESH_FILE = "00-sample.yaml"
APPLIED_KINDS = ("VirtualService", "DestinationRule")
GRPC_PORT, HTTP_PORT, MONITORING_PORT, STATUS_PORT = 15010, 8080, 15014, 15020
BIN = Path(sys.executable).parent

Say = Callable[[str], None]


class DemoError(RuntimeError):
    """Something the user can act on; the message says what and where to look."""


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Timing:
    step: str
    seconds: float


class NetnsCluster:
    """The sample in network namespaces on one bridge; see the module docstring."""

    def __init__(
        self,
        *,
        sample: Path = DEFAULT_SAMPLE,
        mesh: bool = True,
        store: StateStore | None = None,
        made_by: str = "cli",
        say: Say = _quiet,
    ) -> None:
        self.sample_dir = sample
        self.mesh = mesh
        self.store = store or StateStore()
        self.made_by = made_by
        self.say = say
        self.processes = Processes()
        self.timings: list[Timing] = []
        self._state: DemoState | None = None
        self._topology: Topology | None = None
        self._helpers: dict[str, BatchClient] = {}
        self._http = httpx.Client(timeout=2.0, trust_env=False)  # never a proxy from env

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> DemoState:
        if self._state is None:
            self._state = self.store.load()
        if self._state is None:
            raise DemoError("no demo is running here (start one with `istiolite demo up`)")
        return self._state

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            self._topology = topology_from_json(self.state.topology)
        return self._topology

    def deploy_sample(self) -> Topology:
        """Create the namespaces and start every process; `wait_ready` waits for them."""
        require_root()
        existing = self.store.load()
        if existing is not None and existing.alive():
            raise DemoError(
                f"a demo is already running (started by {existing.made_by}); "
                "`istiolite demo down` removes it"
            )
        if existing is not None or network.demo_netns() or network.demo_links():
            self.say("removing what a previous run left behind")
            self.teardown()
        sample = read_sample((self.sample_dir / SAMPLE_MANIFEST).read_text())
        topology = plan(sample, mesh=self.mesh)
        self._state = DemoState(
            made_by=self.made_by, sample=str(self.sample_dir), topology=topology_to_json(topology)
        )
        self._topology = topology
        self.store.save(self._state)
        with self._timed("network"):
            network.create(topology)
            self._write_files(sample, topology)
        with self._timed("processes started"):
            if topology.mesh:
                self._start_discovery()
                self._capture_all(topology)
                for pod in topology.pods:
                    self._start_agent(pod)
            for pod in topology.pods:
                self._start_app(pod)
        return topology

    def up(self, *, timeout: float = 120.0) -> Topology:
        topology = self.deploy_sample()
        self.wait_ready(timeout=timeout)
        return topology

    def wait_ready(self, *, timeout: float = 120.0) -> None:
        """Until discovery, every sidecar and app are ready and productpage shows reviews."""
        topology = self.topology
        with self._timed("ready"):
            if topology.mesh:
                self._until(self._discovery_unready, timeout, "pilot-discovery ready")
            for pod in topology.pods:
                self._until(functools.partial(self._pod_unready, pod), timeout, f"{pod.name} ready")
            self._until(self._productpage_unready, timeout, "productpage shows reviews")

    def teardown(self) -> None:
        """Stop every process, remove every namespace, link, rule and file of the demo."""
        self.close_helpers()
        state = self.store.load()
        if state is not None:
            self.processes.stop(state.processes)
        shm = _envoy_shm_files(self.store.pods)
        network.sweep(
            kill_namespace_pids=lambda ns: self.processes.kill_pids(network.namespace_pids(ns)),
            say=self.say,
        )
        self.processes.reap_all()
        for path in shm:
            path.unlink(missing_ok=True)
        shutil.rmtree(self.store.directory, ignore_errors=True)
        self._state = self._topology = None

    def close(self) -> None:
        """Forget this process's handles (the demo keeps running)."""
        self.close_helpers()
        self._http.close()

    def close_helpers(self) -> None:
        for helper in self._helpers.values():
            helper.close()
        self._helpers.clear()

    # --- routing config -------------------------------------------------------------------

    def apply(self, config: str | Path) -> list[str]:
        """Validate Istio YAML and put each resource into discovery's watched directory.

        Each resource gets one file named after its kind, namespace and name, so applying a
        resource again replaces it, as `kubectl apply` does.
        """
        _ = self.state  # raises when no demo is running
        written = []
        for name, doc, label in self._resources(config):
            _write_atomically(self.store.config / name, yaml.safe_dump(doc, sort_keys=False))
            written.append(f"{label} configured")
        return written

    def delete(self, config: str | Path) -> list[str]:
        _ = self.state  # raises when no demo is running
        deleted = []
        for name, _, label in self._resources(config):
            path = self.store.config / name
            if path.exists():
                path.unlink()
                deleted.append(f"{label} deleted")
        return deleted

    def reset(self) -> None:
        """Back to the sample as deployed: no routing config, no knobs in any app."""
        for path in self.store.config.glob("*.yaml"):
            if path.name != MESH_FILE:
                path.unlink()
        for pod in self.topology.pods:
            [reply] = self.request(
                pod.name, f"http://127.0.0.1:{_port(pod)}/control", method="POST", body={}
            )
            if not reply.ok:
                raise DemoError(f"{pod.name}: resetting the knobs failed: {reply}")

    # --- traffic ------------------------------------------------------------------------------

    def request(
        self,
        from_workload: str,
        url: str,
        *,
        n: int = 1,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: Any = None,
        concurrency: int = 1,
        timeout: float = 10.0,
    ) -> list[Reply]:
        """`n` requests sent from inside the workload's namespace (through its sidecar)."""
        helper = self._helpers.get(from_workload)
        if helper is None or not helper.running():
            pod = self.topology.pod(from_workload)
            log = self.store.logs / f"{pod.name}.loadclient.log"
            argv = ["ip", "netns", "exec", pod.netns, sys.executable, loadclient.__file__]
            helper = self._helpers[from_workload] = BatchClient(argv, log)
        spec = {"url": url, "n": n, "headers": dict(headers or {}), "method": method}
        spec.update({"body": body, "concurrency": concurrency, "timeout": timeout})
        return helper.batch(spec)

    # --- breaking things ---------------------------------------------------------------------

    def kill_envoy(self, workload: str, sig: signal.Signals = signal.SIGKILL) -> list[int]:
        """Signal the Envoy process(es) of the workload's sidecar; returns their pids."""
        agent = self._record(workload, "agent")
        pids = _children(agent.pid, comm="envoy")
        if not pids:
            raise DemoError(f"{workload}: the agent (pid {agent.pid}) runs no Envoy right now")
        for pid in pids:
            os.kill(pid, sig)
        return pids

    def envoy_pids(self, workload: str) -> list[int]:
        return _children(self._record(workload, "agent").pid, comm="envoy")

    def app_instance(self, workload: str) -> str:
        """Who serves the workload: changes when the app process is replaced."""
        app = self._record(workload, "app")
        return f"pid {app.pid} started at {app.start_time}" if app.alive() else "exited"

    def agent_metrics(self, workload: str) -> dict[str, float]:
        pod = self.topology.pod(workload)
        response = self._http.get(f"http://{pod.address}:{STATUS_PORT}/stats/prometheus")
        response.raise_for_status()
        return parse_prometheus(response.text)

    def stop_discovery(self) -> None:
        self.processes.stop([self._record("istiod", "discovery")])

    def start_discovery(self, *, timeout: float = 60.0) -> None:
        if self._record("istiod", "discovery").alive():
            raise DemoError("pilot-discovery is already running")
        self._start_discovery()
        self._until(self._discovery_unready, timeout, "pilot-discovery ready")

    def connected_proxies(self) -> list[str]:
        """The proxy ids pilot-discovery lists in /debug/syncz."""
        url = f"http://{DISCOVERY_ADDRESS}:{HTTP_PORT}/debug/syncz"
        return proxy_ids(self._http.get(url).raise_for_status().json())

    # --- status ----------------------------------------------------------------------------

    def status(self) -> list[str]:
        """A human-readable report: addresses, processes, readiness, memory, logs."""
        state, topology = self.state, self.topology
        lines = [f"istiolite demo (started by {state.made_by}), mesh: {topology.mesh}"]
        lines.append(f"productpage: {productpage_url(topology)}")
        if topology.mesh:
            ready = self._discovery_unready() or "ready"
            lines.append(f"pilot-discovery {DISCOVERY_ADDRESS}: {ready}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                lines.append(f"  connected proxies: {len(self.connected_proxies())}")
        for pod in topology.pods:
            lines.append(f"{pod.name:16} {pod.address:14} {self._pod_unready(pod) or 'ready'}")
        lines.append("processes:")
        for record in state.processes:
            rss = _rss_mb(record.pid) if record.alive() else 0.0
            lines.append(f"  {record.name:26} pid {record.pid:<8} {record.state():8} {rss:6.1f} MB")
            if record.role == "agent" and record.alive():
                for pid in _children(record.pid, comm="envoy"):
                    lines.append(
                        f"  {record.pod + '/envoy':26} pid {pid:<8} {'':8} {_rss_mb(pid):6.1f} MB"
                    )
        usage = memory_usage(network.demo_netns())
        lines.append(
            f"memory of all demo processes: {usage.rss_mb:.0f} MB RSS, {usage.pss_mb:.0f} MB PSS"
        )
        lines.append(f"logs: {self.store.logs}/; config: {self.store.config}/")
        return lines

    # --- starting --------------------------------------------------------------------------

    def _write_files(self, sample: Sample, topology: Topology) -> None:
        for pod in topology.namespaces():
            files = {"hosts": hosts_file(topology, pod), "resolv.conf": RESOLV_CONF}
            network.write_netns_files(pod.netns, files)
        self.store.config.mkdir(parents=True, exist_ok=True)
        self.store.logs.mkdir(parents=True, exist_ok=True)
        (self.store.config / MESH_FILE).write_text(mesh_manifests(sample, topology))

    def _start_discovery(self) -> None:
        pod = self.topology.discovery
        argv = [str(BIN / "pilot-discovery"), "discovery", "--config-dir", str(self.store.config)]
        for flag, port in (("--grpc-addr", GRPC_PORT), ("--http-addr", HTTP_PORT)):
            argv += [flag, f"{pod.address}:{port}"]
        argv += ["--monitoring-addr", f"{pod.address}:{MONITORING_PORT}"]
        self._spawn(pod, "discovery", argv, {})

    def _capture_all(self, topology: Topology) -> None:
        """`pilot-agent iptables` in every pod at once (each is a Python start-up)."""
        running = []
        for pod in topology.pods:
            argv = ["ip", "netns", "exec", pod.netns, str(BIN / "pilot-agent"), "iptables"]
            argv += ["--proxy-uid", str(PROXY_UID), "--proxy-gid", str(PROXY_UID)]
            running.append(
                (pod, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            )
        for pod, process in running:
            output, _ = process.communicate(timeout=60)
            if process.returncode != 0:
                raise DemoError(f"{pod.name}: `pilot-agent iptables` failed:\n{output.decode()}")

    def _start_agent(self, pod: Pod) -> None:
        workload = pod.workload
        assert workload is not None
        home = self.store.pods / pod.name
        proxy = home / "proxy"
        proxy.mkdir(parents=True, exist_ok=True)
        (home / "labels").write_text(pod_labels_file(workload.labels))
        env = {
            "POD_NAME": pod.name,
            "POD_NAMESPACE": workload.namespace,
            "INSTANCE_IP": pod.address,
            "SERVICE_ACCOUNT": workload.service_account,
            "ISTIO_METAJSON_LABELS": json.dumps(dict(workload.labels), sort_keys=True),
            "POD_LABELS_PATH": str(home / "labels"),
            "PROXY_CONFIG_PATH": str(proxy),
            "ISTIO_KUBE_APP_PROBERS": json.dumps(workload.probers),
            "ENVOY_CONCURRENCY": "1",  # six Envoys share the machine with everything else
            "DRAIN_DURATION": "1s",
        }
        argv = [str(BIN / "pilot-agent"), "proxy", "sidecar"]
        argv += ["--discovery-address", f"{DISCOVERY_ADDRESS}:{GRPC_PORT}"]
        self._spawn(pod, "agent", argv, env, gid=PROXY_UID)

    def _start_app(self, pod: Pod) -> None:
        assert pod.workload is not None
        argv = [sys.executable, str(self.sample_dir / SAMPLE_APP)]
        self._spawn(pod, "app", argv, dict(pod.workload.env))

    def _spawn(
        self, pod: Pod, role: Role, argv: list[str], env: dict[str, str], *, gid: int = -1
    ) -> None:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
        record = self.processes.spawn(
            netns=pod.netns,
            hostname=pod.name,
            pod=pod.name,
            role=role,
            argv=argv,
            env={**base, **env},
            log=self.store.logs / f"{pod.name}.{role}.log",
            gid=gid,
        )
        self.state.record(record)
        self.store.save(self.state)

    # --- readiness -------------------------------------------------------------------------

    def _discovery_unready(self) -> str | None:
        record = self._record("istiod", "discovery")
        if not record.alive():
            return f"pilot-discovery {record.state()}; see {record.log}"
        return self._http_unready(f"http://{DISCOVERY_ADDRESS}:{HTTP_PORT}/ready")

    def _pod_unready(self, pod: Pod) -> str | None:
        assert pod.workload is not None
        for record in self.state.processes:
            if record.pod == pod.name and not record.alive():
                return f"{record.name} {record.state()}; see {record.log}"
        if not self.topology.mesh:
            return self._http_unready(f"http://{pod.address}:{pod.workload.port}/health")
        base = f"http://{pod.address}:{STATUS_PORT}"
        probes = [f"{base}/healthz/ready"] + [f"{base}{path}" for path in pod.workload.probers]
        return next(filter(None, map(self._http_unready, probes)), None)

    def _productpage_unready(self) -> str | None:
        url = productpage_url(self.topology)
        try:
            response = self._http.get(url)
            page = response.json()
        except (httpx.HTTPError, ValueError) as error:
            return f"{url}: {error}"
        reviews = page.get("reviews", {}) if isinstance(page, dict) else {}
        if response.status_code != 200 or reviews.get("status") != 200:
            return f"{url}: HTTP {response.status_code}, reviews: {reviews.get('error')}"
        return None

    def _http_unready(self, url: str) -> str | None:
        try:
            response = self._http.get(url)
        except httpx.HTTPError as error:
            return f"{url}: {type(error).__name__} {error}"
        return None if response.status_code == 200 else f"{url}: HTTP {response.status_code}"

    def _until(self, unready: Callable[[], str | None], timeout: float, what: str) -> None:
        """Poll until `unready` says nothing; a demo process that died ends the wait at once."""
        deadline = time.monotonic() + timeout
        while (reason := unready()) is not None:
            dead = [p for p in self.state.processes if not p.alive()]
            if dead:
                raise DemoError(f"waiting for {what}: " + "; ".join(map(_died, dead)))
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}: {reason}")
            time.sleep(0.2)

    # --- helpers ----------------------------------------------------------------------------

    def _record(self, pod: str, role: Role) -> ProcessRecord:
        record = self.state.find(pod, role)
        if record is None:
            raise DemoError(f"the demo has no {role} process for {pod!r}")
        return record

    def _resources(self, config: str | Path) -> Iterator[tuple[str, dict[str, Any], str]]:
        """(file name, document, label) per resource; every document is validated first."""
        try:
            text = read_text(config, special_ok=True) if isinstance(config, Path) else config
            docs = load_all(text)
        except (SourceError, YamlError) as error:
            source = f"{config}: " if isinstance(config, Path) else ""
            raise DemoError(f"nothing applied: {source}{error}") from None
        problems, found = [], []
        for doc in docs:
            try:
                resource = parse_resource(doc)
            except ValidationError as error:
                problems.append(str(error))
                continue
            if resource.KIND not in APPLIED_KINDS:
                problems.append(
                    f"{resource.KIND} {resource.meta.key}: the demo applies only "
                    f"{', '.join(APPLIED_KINDS)}; workloads and services come from the sample"
                )
                continue
            meta = resource.meta
            name = f"{resource.KIND.lower()}-{meta.namespace}-{meta.name}.yaml"
            found.append((name, doc, f"{resource.KIND.lower()}/{meta.name}"))
        if problems:
            raise DemoError("nothing applied:\n" + "\n".join(problems))
        yield from found

    @contextlib.contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.timings.append(Timing(step, time.monotonic() - began))


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    rss_mb: float
    pss_mb: float
    processes: int


def memory_usage(namespaces: Sequence[str]) -> MemoryUsage:
    """RSS and PSS (shared pages split fairly) of every process in the demo's namespaces."""
    rss = pss = 0
    pids = [pid for ns in namespaces for pid in network.namespace_pids(ns)]
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return MemoryUsage(rss / 1024, pss / 1024, len(pids))


def proxy_ids(syncz: Any) -> list[str]:
    """Proxy ids from /debug/syncz: a list of objects with an id, or an object keyed by id."""
    if isinstance(syncz, dict):
        inner = syncz.get("proxies")
        return proxy_ids(inner) if inner is not None else sorted(syncz)
    ids = []
    for entry in syncz if isinstance(syncz, list) else []:
        if isinstance(entry, dict):
            ids.append(str(entry.get("proxy") or entry.get("id") or entry.get("node") or ""))
    return ids


def productpage_url(topology: Topology) -> str:
    pod = (
        topology.pod("productpage-v1")
        if any(p.name == "productpage-v1" for p in topology.pods)
        else topology.pods[0]
    )
    return f"http://{pod.address}:{_port(pod)}/productpage"


def require_root() -> None:
    if os.geteuid() != 0:
        raise DemoError(
            "the demo needs root: it creates network namespaces, veth links and iptables "
            "rules (try: sudo .venv/bin/istiolite demo up)"
        )
    missing = [tool for tool in ("ip", "iptables", "iptables-restore") if not shutil.which(tool)]
    if missing:
        raise DemoError(
            f"the demo needs {', '.join(missing)} (Debian: apt-get install iproute2 iptables)"
        )


def _port(pod: Pod) -> int:
    return pod.workload.port if pod.workload else HTTP_PORT


def _children(parent: int, *, comm: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat and stat.ppid == parent and stat.comm == comm and stat.state != "Z":
                found.append(int(entry.name))
    return sorted(found)


def _died(record: ProcessRecord) -> str:
    try:
        tail = Path(record.log).read_text(errors="replace").splitlines()[-8:]
    except OSError:
        tail = []
    shown = "".join(f"\n    {line}" for line in tail)
    return f"{record.name} {record.state()} (log {record.log}){shown}"


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _envoy_shm_files(pods: Path) -> list[Path]:
    """Envoy's shared memory files of the demo's sidecars (Envoy never removes them)."""
    found = []
    for base_id_file in pods.glob("*/proxy/envoy-base-id"):
        with contextlib.suppress(OSError, ValueError):
            base_id = int(base_id_file.read_text().strip())
            found.append(Path("/dev/shm") / f"envoy_shared_memory_{base_id * 10}")
    return found


def _write_atomically(path: Path, text: str) -> None:
    # The temporary name is hidden and not *.yaml, so the watcher never reads half a file.
    partial = path.parent / f".{path.name}.tmp"
    partial.write_text(text)
    os.replace(partial, path)
