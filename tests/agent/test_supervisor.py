"""pilot-agent with a real Envoy and the real pilot-discovery: crashes, hangs, crash loops,
readiness. Each test runs in a pod network namespace of its own (see harness.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from istiolite.agent.envoy import shm_path
from istiolite.testing.mesh import Discovery, acked_all
from tests.agent.harness import (
    Agent,
    Ports,
    free_port,
    is_stopped_or_gone,
    start_backend,
    sync_status,
)

pytestmark = [pytest.mark.envoy, pytest.mark.netns]

MakeAgent = Callable[..., Agent]


async def _wait_for(predicate: Callable[[], bool], limit: float, what: str) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < limit, f"{what}: not within {limit}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def _answers_until_ready(agent: Agent, limit: float = 20.0) -> list[tuple[bool, str]]:
    """Every /healthz/ready answer from now until the first 200, in order."""
    answers: list[tuple[bool, str]] = []
    deadline = time.monotonic() + limit
    while not (answers and answers[-1][0]):
        assert time.monotonic() < deadline, f"not ready within {limit}s: {answers[-3:]}"
        answers.append(await agent.ready())
        await asyncio.sleep(0.005)
    return answers


def _base_id(tmp_path: Path) -> int:
    return int((tmp_path / "proxy" / "envoy-base-id").read_text())


def _dynamic_listeners() -> set[str]:
    url = f"http://127.0.0.1:{Ports.admin}/listeners?format=json"
    answer = httpx.get(url, timeout=2, verify=False)
    return {entry["name"] for entry in answer.json()["listener_statuses"]}


async def test_killed_envoy_is_restarted_and_readiness_is_false_until_config_arrives(
    discovery: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    [old] = agent.envoys()
    before = sync_status(discovery)
    assert acked_all(before), before

    os.kill(old, signal.SIGKILL)
    answers = await _answers_until_ready(agent)

    gap = [text for ready, text in answers[:-1]]
    assert gap, "readiness must be false between the kill and the new Envoy's config"
    assert all(text.startswith("Envoy") for text in gap), gap
    # Ready means configured by discovery: the listeners it sends are there.
    assert {"virtualInbound", "virtualOutbound"} <= _dynamic_listeners()
    [new] = agent.envoys()
    assert new != old
    await _wait_for(lambda: acked_all(sync_status(discovery)), 5, "the new Envoy ACKed")
    after = sync_status(discovery)
    assert after is not None and before is not None
    assert after["connection"] != before["connection"], "the new Envoy fetched its own config"
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="crash") == 1


async def test_hung_envoy_is_killed_within_interval_times_threshold_plus_one_second(
    discovery: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent("--health-check-threshold", "3")
    await agent.wait_ready()
    [hung] = agent.envoys()
    # Hung at once: the agent's own poll may not have seen this Envoy answer yet, only the
    # readiness check has; that answer must end the startup grace all the same.

    os.kill(hung, signal.SIGSTOP)
    took = await _wait_for(lambda: hung not in agent.envoys(), 10, "hung Envoy replaced")
    assert took <= 0.2 * 3 + 1.0
    await agent.wait_ready()
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="unhealthy") == 1
    assert acked_all(sync_status(discovery))


async def test_envoy_that_always_exits_backs_off_to_the_cap_without_spinning(
    discovery: Discovery, make_agent: MakeAgent
) -> None:
    # A real Envoy that cannot start: its admin port is taken, so it exits with 1 every time.
    squatter = socket.create_server(("127.0.0.1", Ports.admin))
    cap = 0.4
    agent = make_agent("--restart-backoff-base", "50ms", "--restart-backoff-cap", "400ms")
    try:
        await _wait_for(lambda: "restarting in 0.40s" in agent.log(), 20, "backoff reached the cap")
        cpu_before = _cpu_seconds(agent.pid)
        crashes_before = await agent.metric("istio_agent_envoy_restarts_total", reason="crash")
        began = time.monotonic()
        answers = []
        for _ in range(20):
            answers.append(await agent.ready())
            await asyncio.sleep(0.1)
        window = time.monotonic() - began
        crashes = (
            await agent.metric("istio_agent_envoy_restarts_total", reason="crash") - crashes_before
        )
    finally:
        squatter.close()

    assert crashes <= window / cap + 1, "restarts must be spaced by the capped backoff"
    assert crashes >= 2, "it keeps trying"
    assert _cpu_seconds(agent.pid) - cpu_before < 0.5 * window
    delays = [
        float(line.rsplit(" ", 1)[1].rstrip("s"))
        for line in agent.log().splitlines()
        if "restarting in" in line
    ]
    assert max(delays) == cap
    assert not any(ready for ready, _ in answers)
    # Down: waiting out the backoff ("...; restarting in 0.40s"), or between Envoy's exit
    # and the loop handling it, which now includes asking Envoy whether its configuration is
    # to blame (it is not: the port is taken). While an attempt runs, the squatter holds the
    # admin port and never answers.
    down = "Envoy is not running: Envoy exited with 1"
    assert all(text.startswith((down, "Envoy admin did not answer")) for _, text in answers)
    assert any(text.startswith(down) for _, text in answers), answers
    # The cause is gone: the next attempt starts, and discovery configures it.
    await agent.wait_ready(limit=30)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_readiness_names_missing_listeners_and_clusters_until_discovery_sends_them(
    control_plane: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent()  # discovery is not running yet
    await _wait_for(lambda: bool(agent.envoys()), 20, "Envoy started")
    text = ""
    for _ in range(200):
        ready, text = await agent.ready()
        assert not ready
        if "LDS" in text:
            break
        await asyncio.sleep(0.05)
    assert "INITIALIZING, not LIVE" in text
    assert "has not received listeners (LDS) yet" in text
    assert "has not received clusters (CDS) yet" in text

    control_plane.start()
    await agent.wait_ready(limit=30)
    assert acked_all(sync_status(control_plane))


async def test_envoy_health_listener_answers_readiness_through_the_agent(
    discovery: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    async with httpx.AsyncClient(verify=False) as client:
        health = await client.get(f"http://127.0.0.1:{Ports.health}/healthz/ready")
        prometheus = await client.get(f"http://127.0.0.1:{Ports.prometheus}/stats/prometheus")
    assert (health.status_code, health.text) == (200, "ready\n")
    assert "envoy_server_live" in prometheus.text


async def test_stats_merge_agent_and_envoy_metrics(
    discovery: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    await asyncio.sleep(0.5)  # one health poll after ready sets the gauge
    text = (await agent.get("/stats/prometheus")).text
    assert "# TYPE istio_agent_envoy_restarts_total counter" in text
    assert 'istio_agent_envoy_restarts_total{reason="crash"} 0.0' in text
    assert "istio_agent_envoy_ready 1.0" in text
    assert "istio_agent_envoy_uptime_seconds" in text
    assert "envoy_server_live{} 1" in text


async def test_quitquitquit_stops_envoy_at_once_and_leaves_no_shared_memory(
    tmp_path: Path, discovery: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    await agent.wait_ready()
    envoys = agent.envoys()
    base_id = _base_id(tmp_path)
    assert shm_path(base_id).exists()

    async with httpx.AsyncClient(verify=False) as client:
        answer = await client.post(agent.status + "/quitquitquit")
    assert answer.status_code == 200
    assert agent.process is not None
    await _wait_for(
        lambda: agent.process is not None and agent.process.poll() is not None, 5, "agent exit"
    )
    assert agent.process.returncode == 0, agent.log()[-2000:]
    assert all(is_stopped_or_gone(pid) for pid in envoys)
    assert not shm_path(base_id).exists()


async def test_app_probes_are_served_on_the_status_port(make_agent: MakeAgent) -> None:
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
