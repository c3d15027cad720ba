"""pilot-agent with a real Envoy and an ADS server: crashes, hangs, crash loops, readiness.

The ADS server is the stand-in in ads_standin.py until pilot-discovery exists.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
from istiolite.agent.envoy import shm_path

from tests.agent.ads_standin import AdsStandIn
from tests.agent.harness import Agent, Ports, free_port, is_stopped_or_gone, start_backend

pytestmark = pytest.mark.envoy

MakeAgent = Callable[..., Agent]


async def _wait_for(predicate: Callable[[], bool], limit: float, what: str) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < limit, f"{what}: not within {limit}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


def _base_id(tmp_path: Path) -> int:
    return int((tmp_path / "proxy" / "envoy-base-id").read_text())


async def test_killed_envoy_is_restarted_and_readiness_is_false_until_config_arrives(
    ads: AdsStandIn, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    [old] = agent.envoys()
    streams_before = ads.servicer.streams

    os.kill(old, signal.SIGKILL)
    ready, text = await agent.ready()
    assert not ready
    assert "Envoy" in text

    await agent.wait_ready()
    [new] = agent.envoys()
    assert new != old
    assert ads.servicer.streams > streams_before, "the new Envoy fetched its config again"
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="crash") == 1


async def test_hung_envoy_is_killed_within_interval_times_threshold_plus_one_second(
    ads: AdsStandIn, make_agent: MakeAgent
) -> None:
    agent = make_agent("--health-check-threshold", "3")
    await agent.wait_ready()
    [hung] = agent.envoys()

    os.kill(hung, signal.SIGSTOP)
    took = await _wait_for(lambda: hung not in agent.envoys(), 10, "hung Envoy replaced")
    assert took <= 0.2 * 3 + 1.0
    await agent.wait_ready()
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="unhealthy") == 1


async def test_envoy_that_always_exits_backs_off_to_the_cap_without_spinning(
    tmp_path: Path, make_agent: MakeAgent
) -> None:
    failing = tmp_path / "failing-envoy"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    cap = 0.4
    agent = make_agent(
        "--envoy-binary", str(failing),
        "--restart-backoff-base", "50ms",
        "--restart-backoff-cap", "400ms",
    )  # fmt: skip
    await _wait_for(lambda: "restarting in 0.40s" in agent.log(), 10, "backoff reached the cap")
    cpu_before = _cpu_seconds(agent.pid)
    crashes_before = await agent.metric("istio_agent_envoy_restarts_total", reason="crash")
    window = 2.0
    await asyncio.sleep(window)
    crashes = (
        await agent.metric("istio_agent_envoy_restarts_total", reason="crash") - crashes_before
    )

    assert crashes <= window / cap + 1, "restarts must be spaced by the capped backoff"
    assert crashes >= 2, "it keeps trying"
    assert _cpu_seconds(agent.pid) - cpu_before < 0.5 * window
    delays = [
        float(line.rsplit(" ", 1)[1].rstrip("s"))
        for line in agent.log().splitlines()
        if "restarting in" in line
    ]
    assert max(delays) == cap
    ready, text = await agent.ready()
    assert not ready
    assert "Envoy is not running: Envoy exited with 3; restarting in" in text


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_readiness_waits_for_listeners_and_clusters_from_discovery(
    ports: Ports, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await _wait_for(lambda: bool(agent.envoys()), 20, "Envoy started")
    text = ""
    for _ in range(100):
        ready, text = await agent.ready()
        assert not ready
        if "LDS" in text:
            break
        await asyncio.sleep(0.05)
    assert "INITIALIZING, not LIVE" in text
    assert "has not received listeners (LDS) yet" in text
    assert "has not received clusters (CDS) yet" in text

    late = AdsStandIn(port=ports.ads, backend_port=ports.backend, listener_port=ports.listener)
    await late.start()
    try:
        await agent.wait_ready(limit=30)
    finally:
        await late.stop()


async def test_envoy_health_listener_answers_readiness_through_the_agent(
    ports: Ports, ads: AdsStandIn, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    async with httpx.AsyncClient() as client:
        health = await client.get(f"http://127.0.0.1:{ports.health}/healthz/ready")
        prometheus = await client.get(f"http://127.0.0.1:{ports.prometheus}/stats/prometheus")
    assert (health.status_code, health.text) == (200, "ready\n")
    assert "envoy_server_live" in prometheus.text


async def test_stats_merge_agent_and_envoy_metrics(ads: AdsStandIn, make_agent: MakeAgent) -> None:
    agent = make_agent()
    await agent.wait_ready()
    await asyncio.sleep(0.5)  # one health poll after ready sets the gauge
    text = (await agent.get("/stats/prometheus")).text
    assert "istio_agent_envoy_ready 1.0" in text
    assert "istio_agent_envoy_uptime_seconds" in text
    assert "envoy_server_live{} 1" in text


async def test_quitquitquit_stops_envoy_at_once_and_leaves_no_shared_memory(
    tmp_path: Path, ads: AdsStandIn, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    envoys = agent.envoys()
    base_id = _base_id(tmp_path)
    assert shm_path(base_id).exists()

    async with httpx.AsyncClient() as client:
        answer = await client.post(agent.status + "/quitquitquit")
    assert answer.status_code == 200
    assert agent.process is not None
    await _wait_for(
        lambda: agent.process is not None and agent.process.poll() is not None, 5, "agent exit"
    )
    assert agent.process.returncode == 0, agent.log()[-2000:]
    assert all(is_stopped_or_gone(pid) for pid in envoys)
    assert not shm_path(base_id).exists()


async def test_app_probes_are_served_on_the_status_port(
    ports: Ports, make_agent: MakeAgent
) -> None:
    app = free_port()
    probers = {
        "/app-health/web/readyz": {"httpGet": {"path": "/", "port": app}},
        "/app-health/web/livez": {"tcpSocket": {"port": free_port()}},
    }
    runner = await start_backend(app)
    try:
        agent = make_agent(env={"ISTIO_KUBE_APP_PROBERS": json.dumps(probers)})
        await _wait_for(lambda: bool(agent.envoys()), 20, "agent up")
        ready = await agent.get("/app-health/web/readyz")
        live = await agent.get("/app-health/web/livez")
        missing = await agent.get("/app-health/db/readyz")
    finally:
        await runner.cleanup()
    assert ready.status_code == 200, ready.text
    assert live.status_code == 503 and "tcp 127.0.0.1:" in live.text
    assert missing.status_code == 404 and "/app-health/web/readyz" in missing.text
