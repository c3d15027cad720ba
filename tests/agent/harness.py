"""Helpers for tests that run a real pilot-agent (as a subprocess) with a real Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
from aiohttp import web
from istiolite.agent.envoy import shm_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ports:
    ads: int = field(default_factory=free_port)
    backend: int = field(default_factory=free_port)
    listener: int = field(default_factory=free_port)
    status: int = field(default_factory=free_port)
    admin: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    health: int = field(default_factory=free_port)


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


class Agent:
    """A `pilot-agent proxy sidecar` process and its Envoy, on private loopback ports."""

    def __init__(self, tmp: Path, ports: Ports, *extra: str, env: dict[str, str] | None = None):
        self.tmp = tmp
        self.ports = ports
        self.log_path = tmp / "agent.log"
        self.argv = [
            sys.executable, "-m", "istiolite.agent.cli", "proxy", "sidecar",
            "--discovery-address", f"127.0.0.1:{ports.ads}",
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
        self.env = {**os.environ, "POD_NAME": "web-1", "POD_NAMESPACE": "shop", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.status = f"http://127.0.0.1:{ports.status}"

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
        async with httpx.AsyncClient(timeout=limit) as client:
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


@contextlib.contextmanager
def running(agent: Agent) -> Iterator[Agent]:
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


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
