"""pilot-agent: how fast a killed Envoy is ready again, how fast a hang is caught, agent RSS.

Runs a real agent (subprocess) and Envoy against the ADS stand-in from tests/agent until
pilot-discovery exists. Default health settings (1 s interval, 0.5 s timeout, threshold 3);
the restart stable period is shortened to 0.5 s so that each kill is a first crash (a
restart at once) rather than one in a crash loop (which backs off on purpose).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from tests.agent.ads_standin import AdsStandIn
from tests.agent.harness import Agent, Ports

KILLS = 20
HANGS = 3


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rss_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _until_ready(agent: Agent, limit: float = 30.0) -> float:
    began = time.perf_counter()
    while not (await agent.ready())[0]:
        if time.perf_counter() - began > limit:
            raise RuntimeError(f"not ready after {limit}s: {agent.log()[-2000:]}")
        await asyncio.sleep(0.005)
    return time.perf_counter() - began


async def _kill_to_ready(agent: Agent) -> list[float]:
    samples = []
    for _ in range(KILLS):
        await asyncio.sleep(0.6)  # past the stable period: the next kill restarts at once
        [envoy] = agent.envoys()
        os.kill(envoy, signal.SIGKILL)
        samples.append(await _until_ready(agent))
    return samples


async def _hang_detection(agent: Agent) -> list[float]:
    samples = []
    for _ in range(HANGS):
        await _until_ready(agent)
        await asyncio.sleep(1.2)
        [envoy] = agent.envoys()
        os.kill(envoy, signal.SIGSTOP)
        began = time.perf_counter()
        while envoy in agent.envoys():  # noqa: ASYNC110 (polling /proc; no event to await)
            await asyncio.sleep(0.005)
        samples.append(time.perf_counter() - began)
    return samples


async def _run() -> None:
    ports = Ports()
    ads = AdsStandIn(port=ports.ads, backend_port=ports.backend, listener_port=ports.listener)
    await ads.start()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        agent = Agent(Path(tmp), ports, "--restart-stable-period", "500ms")
        agent.start()
        try:
            cold = await _until_ready(agent, limit=60)
            kills = await _kill_to_ready(agent)
            hangs = await _hang_detection(agent)
            await _until_ready(agent)
            rss, peak = _rss_mb(agent.pid, "VmRSS"), _rss_mb(agent.pid, "VmHWM")
        finally:
            agent.stop()
            await ads.stop()
    print(f"agent start to ready (cold, incl. Python start): {cold * 1000:.0f} ms")
    print(
        f"kill -9 to ready ({KILLS} kills): p50 {statistics.median(kills) * 1000:.0f} ms, "
        f"p99 {_quantile(kills, 0.99) * 1000:.0f} ms, max {max(kills) * 1000:.0f} ms "
        "(goal p50 <= 150 ms)"
    )
    print(
        f"hang (SIGSTOP) to Envoy replaced ({HANGS} hangs, interval 1s x threshold 3): "
        f"p50 {statistics.median(hangs):.2f} s, max {max(hangs):.2f} s (bound 4 s)"
    )
    print(f"agent RSS: {rss:.1f} MB now, {peak:.1f} MB peak (goal <= 40 MB)")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def main() -> None:
    asyncio.run(_run())
