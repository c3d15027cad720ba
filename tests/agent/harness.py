"""A pod for tests (and the agent benchmark): the real pilot-agent, its Envoy, the real
pilot-discovery, and an app, all inside one network namespace.

Why a namespace: pilot-discovery gives every sidecar `virtualOutbound` on 0.0.0.0:15001 and
`virtualInbound` on 0.0.0.0:15006, and with SO_REUSEPORT any other Envoy on the host (another
test, the demo) would share those ports and take some of our connections. In a namespace of
its own the pod also gets Istio's real port numbers (15000, 15020, 15021, 15090, app on 8080),
its IP on `lo`, and the inbound capture of its app port, as in Kubernetes.

`joined(ns)` moves the test's own thread into the namespace for the length of the test, so
every process it starts (discovery, the agent, and through it Envoy) and every socket it
opens (clients, the app) is in the pod: the tests read as if there were no namespace at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
from aiohttp import web

from istiolite.agent.envoy import shm_path
from istiolite.testing.mesh import Discovery
from istiolite.testing.netns import NetNamespace

POD_NAME = "web-1"
POD_NAMESPACE = "shop"
POD_IP = "10.1.0.5"
APP_PORT = 8080
NODE_ID = f"sidecar~{POD_IP}~{POD_NAME}.{POD_NAMESPACE}~{POD_NAMESPACE}.svc.cluster.local"
INBOUND_CAPTURE_PORT = 15006


def pod_mesh_yaml(pod_ip: str) -> str:
    """The pod's service and the pod itself (as a WorkloadEntry at its IP): enough for
    discovery to send all four types, with an inbound filter chain for the app's port."""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {POD_NAMESPACE}}}
spec:
  clusterIP: 10.96.0.5
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: {APP_PORT}}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {POD_NAME}, namespace: {POD_NAMESPACE}}}
spec: {{address: {pod_ip}, labels: {{app: web, version: v1}}}}
"""


MESH_YAML = pod_mesh_yaml(POD_IP)

# What the injector puts into the sidecar's environment (DESIGN §3).
POD_ENV = {
    "POD_NAME": POD_NAME,
    "POD_NAMESPACE": POD_NAMESPACE,
    "INSTANCE_IP": POD_IP,
    "SERVICE_ACCOUNT": "web",
    "ISTIO_METAJSON_LABELS": json.dumps({"app": "web", "version": "v1"}),
}

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ports:
    """The pod's ports: Istio's own, since the pod has a network namespace to itself."""

    status: int = 15020
    admin: int = 15000
    prometheus: int = 15090
    health: int = 15021
    app: int = APP_PORT


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def joined(ns: NetNamespace) -> Iterator[None]:
    """Move the calling thread into `ns` until the block ends (setns is per thread)."""
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns.name}") as pod:
        _setns(pod.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


@contextlib.contextmanager
def pod_namespace() -> Iterator[NetNamespace]:
    """A fresh `ilag-*` namespace with the pod's IP and inbound capture; the caller is in it.

    Connections to the app port at the pod's IP go to Envoy's virtualInbound, as a call from
    another pod would. (The agent's own rules capture inbound traffic in PREROUTING, which a
    call from inside the namespace never passes; test_iptables.py proves those with two.)
    """
    with NetNamespace(prefix="ilag") as ns:
        ns.sh("ip", "addr", "add", f"{POD_IP}/32", "dev", "lo")
        ns.sh("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", POD_IP, "--dport",
              str(APP_PORT), "-j", "REDIRECT", "--to-ports", str(INBOUND_CAPTURE_PORT))  # fmt: skip
        with joined(ns):
            yield ns


def start_discovery(config_dir: Path, workdir: Path, *, start: bool = True) -> Discovery:
    """pilot-discovery serving MESH_YAML (call `.start()` yourself when `start` is False)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "mesh.yaml").write_text(MESH_YAML)
    discovery = Discovery(config_dir, workdir)
    return discovery.start() if start else discovery


def sync_status(discovery: Discovery, node_id: str = NODE_ID) -> dict[str, Any] | None:
    """The proxy's row of discovery's /debug/syncz, or None while it is not connected."""
    rows = [row for row in discovery.syncz()["proxies"] if row["proxy"] == node_id]
    return rows[0] if rows else None


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def is_stopped_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "TZX"
    except (FileNotFoundError, IndexError):
        return True


def sidecar_argv(
    tmp: Path, discovery_address: str, *extra: str, ports: Ports | None = None
) -> list[str]:
    """The installed `pilot-agent proxy sidecar` with the pod's ports and files under `tmp`."""
    ports = ports or Ports()
    return [
        str(Path(sys.executable).parent / "pilot-agent"), "proxy", "sidecar",
        "--discovery-address", discovery_address,
        "--config-path", str(tmp / "proxy"),
        "--pod-labels-path", str(tmp / "labels"),
        "--status-port", str(ports.status),
        "--admin-port", str(ports.admin),
        "--prometheus-port", str(ports.prometheus),
        "--health-port", str(ports.health),
        "--concurrency", "1",
        "--log-level", "error",
        *extra,
    ]  # fmt: skip


class Agent:
    """A pilot-agent process started with `argv` and the pod's environment, and its Envoy."""

    def __init__(
        self,
        tmp: Path,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        status_port: int = Ports.status,
    ):
        self.tmp = tmp
        self.argv = argv
        self.log_path = tmp / "agent.log"
        self.env = {**os.environ, **POD_ENV, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.status = f"http://127.0.0.1:{status_port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def envoys(self) -> list[int]:
        return children_of(self.pid) if self.process else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def get(self, path: str, limit: float = 2.0) -> httpx.Response:
        # verify=False: a client that loads no CA bundle starts in 0.4 ms instead of 35.
        async with httpx.AsyncClient(timeout=limit, verify=False) as client:
            return await client.get(self.status + path)

    async def ready(self) -> tuple[bool, str]:
        try:
            answer = await self.get("/healthz/ready")
        except httpx.HTTPError as error:
            return False, f"status server: {error!r}"
        return answer.status_code == 200, answer.text

    async def wait_ready(self, limit: float = 20.0) -> None:
        deadline = time.monotonic() + limit
        last = ""
        while time.monotonic() < deadline:
            ok, last = await self.ready()
            if ok:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"agent not ready after {limit}s: {last}\n{self.log()[-3000:]}")

    async def metric(self, name: str, **labels: str) -> float:
        text = (await self.get("/stats/prometheus")).text
        wanted = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
        )
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if key == wanted:
                return float(value)
        return 0.0

    def stop(self) -> None:
        """Kill the agent and anything it left behind; safe to call twice."""
        if self.process is None:
            return
        leftovers = self.envoys()
        base_id_file = self.tmp / "proxy" / "envoy-base-id"
        base_id = int(base_id_file.read_text()) if base_id_file.exists() else None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # stop at once, but clean up
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process = None
        if base_id is not None and shm_path(base_id).exists():
            shm_path(base_id).unlink()
            raise AssertionError(f"the agent left {shm_path(base_id)} behind")


async def start_backend(port: int, *, delay: float = 0.0) -> web.AppRunner:
    """An HTTP app behind Envoy: `/` answers "hello", `/slow` after `delay` seconds."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(text="slow hello")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
