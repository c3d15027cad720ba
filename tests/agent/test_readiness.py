"""What the supervisor says about an Envoy that is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

from istiolite.agent.envoy import Epoch, Supervisor
from istiolite.agent.policy import HealthTracker
from istiolite.agent.settings import ProxySettings


async def test_readiness_says_envoy_exited_before_the_supervisor_has_handled_it(
    tmp_path: Path,
) -> None:
    """Between Envoy's exit and the loop handling it (which includes asking Envoy whether its
    configuration is to blame), the readiness text still says why: a busy machine makes that
    window wide."""
    supervisor = Supervisor(ProxySettings(config_path=tmp_path), render_bootstrap=lambda: "")
    exited = await asyncio.create_subprocess_exec("sh", "-c", "exit 1")
    await exited.wait()
    health = HealthTracker(threshold=3, startup_grace=10, started_at=0)
    supervisor.state.current = Epoch(exited, ["envoy"], number=0, started_at=0, health=health)
    supervisor.state.down_reason = ""  # as a start leaves it: the Envoy was running

    readiness = await supervisor.readiness()

    assert readiness.text() == "Envoy is not running: Envoy exited with 1"
