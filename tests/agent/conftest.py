from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.ads_standin import AdsStandIn
from tests.agent.harness import Agent, Ports, start_backend


@pytest.fixture
def ports() -> Ports:
    return Ports()


@pytest.fixture
async def ads(ports: Ports) -> AsyncIterator[AdsStandIn]:
    server = AdsStandIn(port=ports.ads, backend_port=ports.backend, listener_port=ports.listener)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def backend(ports: Ports) -> AsyncIterator[None]:
    runner = await start_backend(ports.backend, delay=1.5)
    yield
    await runner.cleanup()


@pytest.fixture
def make_agent(tmp_path: Path, ports: Ports) -> Iterator[Callable[..., Agent]]:
    """Start `pilot-agent proxy sidecar` with fast health checks; stopped after the test."""
    started: list[Agent] = []

    def make(*extra: str, env: dict[str, str] | None = None) -> Agent:
        fast = ("--health-check-interval", "200ms", "--health-check-timeout", "150ms")
        agent = Agent(tmp_path, ports, *fast, *extra, env=env)
        agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()
