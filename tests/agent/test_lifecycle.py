"""Reloads (hot restart), graceful shutdown and `pilot-agent wait`, with a real Envoy and the
real pilot-discovery. Traffic goes to the pod's IP and is captured into Envoy's virtualInbound,
which forwards it to the app, as a call from another pod would be."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from istiolite.testing.mesh import Discovery, acked_all
from istiolite.testing.wait import eventually_async
from tests.agent.harness import (
    APP_PORT,
    POD_IP,
    Agent,
    free_port,
    is_stopped_or_gone,
    sync_status,
)

pytestmark = [pytest.mark.envoy, pytest.mark.netns]
APP_URL = f"http://{POD_IP}:{APP_PORT}"

MakeAgent = Callable[..., Agent]


class Load:
    """Clients sending GET / through Envoy, on kept-alive and on fresh connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.failures: list[str] = []
        self.running = True

    async def worker(self, *, keep_alive: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=10 if keep_alive else 0)
        async with httpx.AsyncClient(limits=limits, timeout=5, verify=False) as client:
            while self.running:
                try:
                    answer = await client.get(self.url)
                    if answer.status_code != 200 or answer.text != "hello":
                        self.failures.append(f"HTTP {answer.status_code}: {answer.text[:80]}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                self.sent += 1


async def test_hot_restart_reload_drops_no_requests(
    discovery: Discovery, app: None, make_agent: MakeAgent
) -> None:
    agent = make_agent("--drain-duration", "1s")
    await agent.wait_ready()
    [old] = agent.envoys()
    load = Load(APP_URL + "/")
    workers = [asyncio.create_task(load.worker(keep_alive=k)) for k in (True, True, False, False)]
    try:
        await eventually_async(
            lambda: load.sent >= 200, what="traffic flowing", within=30, interval=0.02
        )
        assert agent.process is not None
        agent.process.send_signal(signal.SIGHUP)
        await eventually_async(
            lambda: len(agent.envoys()) == 2, what="new epoch started", within=10, interval=0.02
        )
        # Keep sending until the old epoch has drained and exited, and past 1,000 requests.
        await eventually_async(
            lambda: old not in agent.envoys(), what="old epoch exited", within=15, interval=0.02
        )
        await eventually_async(
            lambda: load.sent >= 1000, what="1,000 requests", within=60, interval=0.02
        )
    finally:
        load.running = False
        await asyncio.gather(*workers)
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    [new] = agent.envoys()
    assert new != old
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="reload") == 1
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="crash") == 0
    ready, text = await agent.ready()
    assert ready, text
    await eventually_async(
        lambda: acked_all(sync_status(discovery)),
        what="the new epoch ACKed its config",
        within=5,
        interval=0.02,
    )


async def test_changed_pod_labels_file_reloads_envoy_with_new_metadata(
    tmp_path: Path, discovery: Discovery, make_agent: MakeAgent
) -> None:
    labels = tmp_path / "labels"
    labels.write_text('app="web"\nversion="v1"\n')
    agent = make_agent("--drain-duration", "1s", "--reload-check-interval", "100ms")
    await agent.wait_ready()
    bootstrap = tmp_path / "proxy" / "envoy-rev.json"
    assert '"version": "v1"' in bootstrap.read_text()

    labels.write_text('app="web"\nversion="v2"\n')
    await eventually_async(
        lambda: '"version": "v2"' in bootstrap.read_text(),
        what="bootstrap re-rendered",
        within=10,
        interval=0.02,
    )
    assert await agent.metric("istio_agent_envoy_restarts_total", reason="reload") == 1
    await agent.wait_ready()


async def test_sigterm_lets_the_request_in_flight_finish_then_exits_within_drain(
    discovery: Discovery, app: None, make_agent: MakeAgent
) -> None:
    drain = 3.0
    agent = make_agent("--drain-duration", f"{drain:g}s")
    await agent.wait_ready()
    envoys = agent.envoys()
    assert agent.process is not None

    async with httpx.AsyncClient(timeout=10, verify=False) as client:
        in_flight = asyncio.create_task(client.get(APP_URL + "/slow"))
        await asyncio.sleep(0.3)  # the request is now waiting on the slow backend
        agent.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.05)
        ready, text = await agent.ready()
        answer = await in_flight
    assert (answer.status_code, answer.text) == (200, "slow hello")
    assert not ready
    assert "shutting down" in text

    process = agent.process
    await eventually_async(
        lambda: process.poll() is not None, what="agent exit", within=drain + 1, interval=0.02
    )
    assert time.monotonic() - signalled <= drain + 0.5
    assert process.returncode == 0, agent.log()[-2000:]
    assert all(is_stopped_or_gone(pid) for pid in envoys)
    log = agent.log()
    said = ["SIGTERM received", "draining Envoy for up to 3s", "drain ended after", "exiting"]
    assert all(words in log for words in said), log[-2000:]
    assert [log.index(words) for words in said] == sorted(log.index(words) for words in said)


async def _wait_command(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pilot-agent"), "wait", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_wait_returns_once_the_proxy_is_ready(
    discovery: Discovery, make_agent: MakeAgent
) -> None:
    agent = make_agent()
    code, output = await _wait_command("--timeout", "30s")  # the default status port, 15020
    assert code == 0, output
    ready, text = await agent.ready()
    assert ready, text


async def test_wait_fails_after_its_timeout_and_says_why() -> None:
    code, output = await _wait_command("--status-port", str(free_port()), "--timeout", "300ms")
    assert code == 1
    assert "timed out after 0.3s waiting for Envoy" in output
