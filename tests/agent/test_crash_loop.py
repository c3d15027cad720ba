"""An Envoy that refuses its arguments or bootstrap is not restarted forever: after a few
start-ups that ended the same way, the agent exits with Envoy's error (for the kubelet's
CrashLoopBackOff and termination message). With the real Envoy, its real refusals."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from istiolite.agent.envoy import Supervisor
from istiolite.agent.settings import ProxySettings
from istiolite.agent.sidecar import EXIT_ENVOY_REFUSED, write_termination_message
from istiolite.testing.netns import NetNamespace
from istiolite.testing.wait import eventually_async
from tests.agent.harness import Agent

MakeAgent = Callable[..., Agent]


@pytest.mark.envoy
@pytest.mark.netns
async def test_envoy_refusing_its_log_level_stops_the_agent_with_envoys_error(
    tmp_path: Path, make_agent: MakeAgent
) -> None:
    # A level the agent lets through (component names are Envoy's to know), Envoy refuses.
    termination_log = tmp_path / "termination-log"
    termination_log.touch()  # the kubelet mounts it; the agent never creates it
    agent = make_agent(
        "--log-level", "info,nosuchcomponent:debug",
        env={"TERMINATION_MESSAGE_PATH": str(termination_log)},
    )  # fmt: skip
    process = agent.process
    assert process is not None

    await eventually_async(lambda: process.poll() is not None, what="the agent gave up", within=60)

    log = agent.log()
    assert process.returncode == EXIT_ENVOY_REFUSED, log[-3000:]
    assert "Traceback" not in log
    assert log.count("started envoy pid") == 3  # ENVOY_STARTUP_FAILURE_LIMIT's default
    message = termination_log.read_text()
    assert message == (
        "Envoy exited with 1 at start-up 3 times in a row, refusing its arguments or bootstrap:\n"
        "error: invalid component specified 'nosuchcomponent'"
    )
    assert message in log  # and the container log says it too, in the same words


@pytest.mark.envoy
async def test_envoy_refusing_its_bootstrap_ends_supervision_with_its_error(
    pod: NetNamespace, tmp_path: Path
) -> None:
    settings = ProxySettings(
        config_path=tmp_path / "proxy",
        startup_failure_limit=2,
        restart_backoff_base=0.01,
        restart_backoff_cap=0.01,
        log_level="error",
    )
    relayed = io.BytesIO()
    bootstrap = json.dumps({"admin": {"address": _socket("127.0.0.1", 99999)}})
    supervisor = Supervisor(settings, render_bootstrap=lambda: bootstrap, envoy_output=relayed)

    refused = await asyncio.wait_for(supervisor.run(), 120)

    assert refused is not None, "supervision ends instead of restarting forever"
    assert refused.code == 1 and refused.config_rejected and not refused.went_live
    assert any("value must be less than or equal to 65535" in line for line in refused.errors)
    assert supervisor.starts == 2
    assert b"PortValue: value must be less than or equal to 65535" in relayed.getvalue()
    assert not (tmp_path / "proxy" / "envoy-base-id").exists(), "the family's files are gone"


@pytest.mark.envoy
async def test_a_bootstrap_mended_between_attempts_starts_the_count_again(
    pod: NetNamespace, tmp_path: Path
) -> None:
    """Refusals that are not the same each time (here: fixed) are no reason to give up."""
    settings = ProxySettings(
        config_path=tmp_path / "proxy",
        startup_failure_limit=2,
        restart_backoff_base=0.01,
        restart_backoff_cap=0.01,
        log_level="error",
        reload_check_interval=3600.0,  # no reloads: each start renders once
    )
    # Refused twice, differently (a fix that was not quite one), then mended.
    bootstraps = [
        "{bad",
        '{"foo": 1}',
        json.dumps({"admin": {"address": _socket("127.0.0.1", 15000)}}),
    ]
    supervisor = Supervisor(
        settings,
        render_bootstrap=lambda: bootstraps[min(supervisor.starts, 2)],
        envoy_output=io.BytesIO(),
    )
    running = asyncio.ensure_future(supervisor.run())
    try:
        await eventually_async(
            lambda: supervisor.state.current is not None and supervisor.state.current.live,
            what="the third Envoy, with a good bootstrap, LIVE",
            within=60,
            interval=0.05,
        )
        assert not running.done()
    finally:
        supervisor.request_stop(graceful=False)
        assert await asyncio.wait_for(running, 60) is None
    assert supervisor.starts == 3


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def test_the_termination_message_goes_where_the_kubelet_mounted_it(tmp_path: Path) -> None:
    mounted = tmp_path / "termination-log"
    mounted.write_text("stale")
    assert write_termination_message(mounted, "Envoy refused")
    assert mounted.read_text() == "Envoy refused"


def test_no_termination_message_file_is_created_outside_kubernetes(tmp_path: Path) -> None:
    absent = tmp_path / "termination-log"
    assert not write_termination_message(absent, "Envoy refused")
    assert not absent.exists()


def test_a_long_termination_message_keeps_its_end_as_the_kubelet_would(tmp_path: Path) -> None:
    mounted = tmp_path / "termination-log"
    mounted.touch()
    write_termination_message(mounted, "x" * 5000 + "the error")
    kept = mounted.read_text()
    assert len(kept) == 4096 and kept.endswith("the error")
