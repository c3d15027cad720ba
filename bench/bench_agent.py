"""pilot-agent: how fast a killed Envoy is ready again, how fast a hang is caught, agent RSS.

Runs the installed `pilot-agent proxy sidecar`, its Envoy and the real pilot-discovery in a
pod of their own (a network namespace, see tests/agent/harness.py), so it needs root.
Default health settings (1 s interval, 0.5 s timeout, threshold 3); the restart stable period
is shortened to 0.5 s so that each kill is a first crash (a restart at once) rather than one
in a crash loop (which backs off on purpose).

Kill to ready is split where the time goes: until the agent has started a new Envoy, until
that Envoy's admin answers (its own start-up), until /healthz/ready is 200 (CDS, EDS, LDS and
RDS fetched from discovery, Envoy LIVE); and the CPU time that Envoy needed for it, which a
busy machine stretches into wall time (`envoy --version` alone takes ~55 ms of CPU).

The poller keeps one connection alive and is cheap, so it does not take the CPU from what it
measures: a fresh httpx client per poll loads a CA bundle, 35 ms of CPU each time, which on
two cores slowed the very restart it was timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from istiolite.testing import netns
from tests.agent.harness import Agent, pod_namespace, sidecar_argv, start_discovery

KILLS = 20
HANGS = 3
POLL = 0.005


@dataclass
class _Restart:
    started: float  # a new Envoy process exists
    answering: float  # its admin API answers
    ready: float  # /healthz/ready is 200
    envoy_cpu: float  # CPU time the new Envoy had used by then


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Poller:
    def __init__(self, agent: Agent, client: httpx.AsyncClient) -> None:
        self.agent = agent
        self.client = client

    async def readiness(self) -> tuple[bool, str]:
        try:
            answer = await self.client.get(self.agent.status + "/healthz/ready")
        except httpx.HTTPError as error:
            return False, repr(error)
        return answer.status_code == 200, answer.text

    async def until_ready(self, limit: float = 30.0) -> float:
        began = time.perf_counter()
        while not (await self.readiness())[0]:
            if time.perf_counter() - began > limit:
                raise RuntimeError(f"not ready after {limit}s: {self.agent.log()[-2000:]}")
            await asyncio.sleep(POLL)
        return time.perf_counter() - began

    async def restart_after_kill(self) -> _Restart:
        [old] = self.agent.envoys()
        os.kill(old, signal.SIGKILL)
        began = time.perf_counter()
        started = answering = 0.0
        while True:
            now = time.perf_counter() - began
            if not started and [p for p in self.agent.envoys() if p != old]:
                started = now
            ready, text = await self.readiness()
            if started and not answering and (ready or _admin_answered(text)):
                answering = time.perf_counter() - began
            if ready:
                took = time.perf_counter() - began
                [new] = self.agent.envoys()
                return _Restart(started, answering or now, took, _cpu_seconds(new))
            if now > 30:
                raise RuntimeError(f"not ready 30s after kill: {text}")
            await asyncio.sleep(POLL)


def _admin_answered(readiness: str) -> bool:
    """Readiness that names Envoy's state or missing config came from Envoy's admin API."""
    return "not LIVE" in readiness or "has not received" in readiness


async def _hang_detection(poller: _Poller) -> list[float]:
    samples = []
    for _ in range(HANGS):
        await poller.until_ready()
        await asyncio.sleep(1.2)
        [envoy] = poller.agent.envoys()
        os.kill(envoy, signal.SIGSTOP)
        began = time.perf_counter()
        while envoy in poller.agent.envoys():  # noqa: ASYNC110 (polling /proc; no event to await)
            await asyncio.sleep(POLL)
        samples.append(time.perf_counter() - began)
    return samples


def _ms(samples: list[float]) -> str:
    return (
        f"p50 {statistics.median(samples) * 1000:.0f} ms, "
        f"p99 {_quantile(samples, 0.99) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms"
    )


async def _run(tmp: Path) -> None:
    discovery = start_discovery(tmp / "config", tmp)
    agent = Agent(tmp, sidecar_argv(tmp, discovery.address, "--restart-stable-period", "500ms"))
    agent.start()
    try:
        async with httpx.AsyncClient(timeout=2, verify=False) as client:
            poller = _Poller(agent, client)
            cold = await poller.until_ready(limit=60)
            kills = []
            for _ in range(KILLS):
                await asyncio.sleep(0.6)  # past the stable period: the next kill restarts at once
                kills.append(await poller.restart_after_kill())
            hangs = await _hang_detection(poller)
            await poller.until_ready()
            rss, peak = _rss_mb(agent.pid, "VmRSS"), _rss_mb(agent.pid, "VmHWM")
    finally:
        agent.stop()
        discovery.stop()
    print(f"agent start to ready (cold, incl. Python start): {cold * 1000:.0f} ms")
    print(f"kill -9 to ready ({KILLS} kills): {_ms([k.ready for k in kills])} (goal p50 <= 150 ms)")
    print(f"  kill to new Envoy started:  {_ms([k.started for k in kills])}")
    print(f"  kill to its admin answering: {_ms([k.answering for k in kills])}")
    print(f"  CPU the new Envoy used until ready: {_ms([k.envoy_cpu for k in kills])}")
    print(
        f"hang (SIGSTOP) to Envoy replaced ({HANGS} hangs, interval 1s x threshold 3): "
        f"p50 {statistics.median(hangs):.2f} s, max {max(hangs):.2f} s (bound 4 s)"
    )
    print(f"agent RSS: {rss:.1f} MB now, {peak:.1f} MB peak (goal <= 40 MB)")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def main() -> None:
    reason = netns.available()
    if reason:
        print(f"skipped: the agent runs in a pod network namespace, which {reason}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp, pod_namespace():
        asyncio.run(_run(Path(tmp)))
