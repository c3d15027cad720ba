from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from istiolite.testing import netns
from istiolite.testing.mesh import Discovery
from istiolite.testing.netns import NetNamespace
from tests.agent.harness import (
    APP_PORT,
    Agent,
    pod_namespace,
    sidecar_argv,
    start_backend,
    start_discovery,
)


@pytest.fixture
def pod() -> Iterator[NetNamespace]:
    """A pod's network namespace; the test runs inside it (see harness.py)."""
    reason = netns.available()
    if reason:
        pytest.skip(f"the agent's Envoy tests run in a pod network namespace, which {reason}")
    with pod_namespace() as ns:
        yield ns


@pytest.fixture
def control_plane(pod: NetNamespace, tmp_path: Path) -> Iterator[Discovery]:
    """The real pilot-discovery for the pod's mesh, with its ports chosen but not started."""
    discovery = start_discovery(tmp_path / "config", tmp_path, start=False)
    yield discovery
    discovery.stop()


@pytest.fixture
def discovery(control_plane: Discovery) -> Discovery:
    return control_plane.start()


@pytest.fixture
async def app(pod: NetNamespace) -> AsyncIterator[None]:
    """The pod's app on 127.0.0.1:8080, reached through Envoy's inbound capture."""
    runner = await start_backend(APP_PORT, delay=1.5)
    yield
    await runner.cleanup()


@pytest.fixture
def make_agent(
    pod: NetNamespace, control_plane: Discovery, tmp_path: Path
) -> Iterator[Callable[..., Agent]]:
    """Start `pilot-agent proxy sidecar` with fast health checks; stopped after the test."""
    started: list[Agent] = []

    def make(*extra: str, env: dict[str, str] | None = None) -> Agent:
        fast = ("--health-check-interval", "200ms", "--health-check-timeout", "150ms")
        argv = sidecar_argv(tmp_path, control_plane.address, *fast, *extra)
        agent = Agent(tmp_path, argv, env=env)
        agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()
