"""The Envoy supervisor: start Envoy, restart it when it crashes or hangs, hot-restart it on
reload, drain it on shutdown.

One task (`Supervisor.run`) owns every Envoy process and is the only one that starts them.
That matters twice over: Envoy sets PR_SET_PDEATHSIG, so its spawning thread must live as
long as it does (the event loop's thread does), and with SO_REUSEPORT a new Envoy would
silently share ports with an old one, so "all old processes are dead" must be known before
a cold start — easy when one loop decides everything. Everything else (process exits, failed
health polls, SIGHUP, SIGTERM) only puts an event on that loop's queue.

A "family" is one cold start and its hot restarts: they share a base id (and so the shared
memory `/dev/shm/envoy_shared_memory_<base id * 10>`, which Envoy never removes; we do).

Restarting heals crashes, but not an Envoy that refuses the arguments or bootstrap it is given:
the next one gets the same. So Envoy's output passes through the agent (to the agent's stderr,
the container log), which keeps its last lines; when an Envoy that never went LIVE exits with an
error, `envoy --mode validate` is asked whether its configuration is to blame (it does not
bind ports, so a port held by another process is not). After a few such start-ups in a row
that ended the same way (policy.StartupFailures), `run` returns that exit instead of looping,
and the agent exits with Envoy's error, for the kubelet to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from istiolite.agent.admin import EnvoyAdmin
from istiolite.agent.metrics import AgentMetrics
from istiolite.agent.policy import (
    Backoff,
    EnvoyExit,
    HealthTracker,
    Readiness,
    StartupFailures,
    error_lines,
    judge_readiness,
)
from istiolite.agent.settings import ProxySettings, format_duration, split_log_level

log = logging.getLogger("istiolite.agent")

SHM_DIR = Path("/dev/shm")
_KILL_WAIT = 2.0
# Until a new Envoy is LIVE the agent looks at it this often, not once per health-check
# interval: the ready gauge, the end of the startup grace and a pending reload wait on it.
_STARTUP_POLL = 0.05
# Enough of Envoy's output to hold its last error lines, however verbose its log level.
_OUTPUT_TAIL = 16 * 1024
# `envoy --mode validate` takes ~0.1 s; the bound only keeps a wedged one from stalling the loop.
_VALIDATE_TIMEOUT = 30.0


class Reason(StrEnum):
    CRASH = "crash"
    UNHEALTHY = "unhealthy"
    RELOAD = "reload"


class _Kind(StrEnum):
    EXITED = "exited"
    UNHEALTHY = "unhealthy"
    RELOAD = "reload"
    STOP = "stop"


@dataclass(slots=True)
class Epoch:
    """One Envoy process: epoch 0 of a family is a cold start, the rest are hot restarts."""

    process: asyncio.subprocess.Process
    argv: list[str]
    number: int
    started_at: float
    health: HealthTracker
    live: bool = False
    output_tail: bytes = b""  # the end of what it printed

    @property
    def running(self) -> bool:
        return self.process.returncode is None


@dataclass(frozen=True, slots=True)
class _Event:
    kind: _Kind
    epoch: Epoch | None = None
    graceful: bool = True


@dataclass(slots=True)
class _State:
    current: Epoch | None = None
    parents: list[Epoch] = field(default_factory=list)
    family_started: float = 0.0
    restart_at: float = 0.0
    down_reason: str = "Envoy has not been started yet"
    reload_pending: bool = False
    stopping: bool = False


def shm_path(base_id: int) -> Path:
    return SHM_DIR / f"envoy_shared_memory_{base_id * 10}"


class Supervisor:
    def __init__(
        self,
        settings: ProxySettings,
        *,
        render_bootstrap: Callable[[], str],
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        envoy_output: BinaryIO | None = None,
        drain_inbound_only: bool = True,
    ) -> None:
        self.settings = settings
        self.render_bootstrap = render_bootstrap
        # A sidecar drains its inbound listeners and keeps serving its app's calls out; a
        # gateway drains every listener (Istio's pilot-agent decides alike).
        self.drain_inbound_only = drain_inbound_only
        self._drained = "inbound listeners" if drain_inbound_only else "listeners"
        self.metrics = metrics or AgentMetrics(restart_reasons=[r.value for r in Reason])
        self.clock = clock
        # Where Envoy's own output goes on its way through: the agent's stderr.
        self.envoy_output = envoy_output or sys.stderr.buffer
        self.startup_failures = StartupFailures(settings.startup_failure_limit)
        self.admin = EnvoyAdmin(settings.admin_port, timeout=settings.health_check_timeout)
        self.backoff = Backoff(
            settings.restart_backoff_base,
            settings.restart_backoff_cap,
            settings.restart_stable_period,
        )
        self.bootstrap_path = settings.config_path / "envoy-rev.json"
        self.base_id_path = settings.config_path / "envoy-base-id"
        self.state = _State()
        self.starts = 0
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._rendered = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics.uptime = self.uptime

    # --- requests from outside (signals, status server); they only enqueue ---------------

    def request_reload(self) -> None:
        self._events.put_nowait(_Event(_Kind.RELOAD))

    def request_stop(self, *, graceful: bool) -> None:
        self.state.stopping = True
        self._events.put_nowait(_Event(_Kind.STOP, graceful=graceful))

    # --- what the status server asks -----------------------------------------------------

    def uptime(self) -> float:
        return self.clock() - self.state.family_started if self.state.current else 0.0

    async def readiness(self) -> Readiness:
        state = self.state
        current = state.current
        if state.stopping:
            return judge_readiness(running=False, observation=None, stopping=True)
        if current is not None and not current.running:
            # It exited, and the loop has not handled that yet (or is asking Envoy why).
            down = f"Envoy exited with {current.process.returncode}"
            return judge_readiness(running=False, observation=None, down=down)
        if current is None:
            return judge_readiness(running=False, observation=None, down=state.down_reason)
        observation = await self.admin.observe()
        if observation.state is not None:
            # An answer is an answer, whoever asked: it ends the startup grace, so a hang
            # right after the kubelet saw the proxy ready is caught at the usual pace.
            current.health.record(ok=True, now=self.clock())
        verdict = judge_readiness(running=True, observation=observation)
        if not verdict.ready and not current.live and any(p.running for p in state.parents):
            # A hot restart in progress: the previous epoch keeps accepting on the shared
            # sockets until this one is initialized, so the proxy is serving.
            return Readiness(True, (f"epoch {current.number - 1} serves while a new one starts",))
        return verdict

    async def drain(self) -> bool:
        accepted = await self.admin.drain_listeners(inbound_only=self.drain_inbound_only)
        log.info("draining %s on request%s", self._drained, "" if accepted else ": Envoy refused")
        return accepted

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> EnvoyExit | None:
        """Supervise Envoy until a stop is requested, or until restarting is no use.

        Returns None after a stop, or the exit of the Envoy that made restarting no use (it
        refused its arguments or bootstrap again; see StartupFailures). Every Envoy is gone
        when this returns.
        """
        self.settings.config_path.mkdir(parents=True, exist_ok=True)
        self._spawn_task(self._watch_inputs())
        try:
            await self._cold_start()
            while await self._handle(await self._next_event()):
                pass
            return self.startup_failures.last if self.startup_failures.gave_up else None
        finally:
            # Envoys first, while their output is still read: one blocked on a full pipe
            # would not stop until killed.
            await self._stop_all(graceful=True)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._remove_family_files()
            await self.admin.close()

    async def _next_event(self) -> _Event:
        """The next event; when Envoy is down, the end of the backoff delay restarts it."""
        while self.state.current is None and not self.state.stopping:
            delay = max(0.0, self.state.restart_at - self.clock())
            try:
                return await asyncio.wait_for(self._events.get(), delay)
            except TimeoutError:
                await self._cold_start()
        return await self._events.get()

    async def _handle(self, event: _Event) -> bool:
        """Act on one event; False ends the loop."""
        current = self.state.current
        if event.kind is _Kind.STOP:
            if event.graceful and current is not None and current.running:
                await self._drain_until_idle()
            return False
        if event.kind is _Kind.RELOAD:
            await self._reload()
        elif event.epoch is not current:
            self._forget_parent(event)
        elif event.kind is _Kind.EXITED and current is not None:
            return await self._after_exit(current)
        elif event.kind is _Kind.UNHEALTHY:
            await self._restart(Reason.UNHEALTHY, "Envoy stopped answering its admin API")
        return True

    async def _after_exit(self, epoch: Epoch) -> bool:
        """Restart an Envoy that exited, unless it keeps refusing its configuration (False)."""
        code = epoch.process.returncode
        assert code is not None
        ended = EnvoyExit(code, went_live=epoch.live, errors=error_lines(_decode(epoch)))
        if ended.may_be_config:
            ended = dataclasses.replace(ended, config_rejected=await self._rejects(epoch.argv))
        if self.startup_failures.give_up(ended):
            log.error("%s", self.startup_failures.message())
            return False
        if ended.config_rejected:
            log.error("Envoy refused its arguments or bootstrap: %s", " | ".join(ended.errors))
        await self._restart(Reason.CRASH, f"Envoy exited with {code}")
        return True

    async def _rejects(self, argv: list[str]) -> bool:
        """Whether Envoy's own check refuses these arguments and this bootstrap."""
        try:
            check = await asyncio.create_subprocess_exec(
                *argv, "--mode", "validate",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        except OSError:
            return False
        try:
            return await asyncio.wait_for(check.wait(), _VALIDATE_TIMEOUT) != 0
        except TimeoutError:
            await _terminate(check, graceful=False)
            return False

    def _forget_parent(self, event: _Event) -> None:
        if event.kind is _Kind.EXITED and event.epoch in self.state.parents:
            self.state.parents.remove(event.epoch)
            log.info("envoy epoch %d exited after draining", event.epoch.number)

    async def _restart(self, reason: Reason, why: str) -> None:
        current = self.state.current
        assert current is not None
        self.metrics.count_restart(reason.value)
        delay = self.backoff.delay_after_exit(self.clock() - current.started_at)
        self.state.restart_at = self.clock() + delay
        # Said before the first await: readiness asked meanwhile gets the reason, not "".
        self.state.down_reason = f"{why}; restarting in {delay:.2f}s"
        log.warning("%s (%s); restarting in %.2fs", why, reason, delay)
        await self._stop_all(graceful=False)

    async def _reload(self) -> None:
        current = self.state.current
        if current is None or not current.running:
            return  # the next cold start renders the new bootstrap anyway
        if not current.live:
            self.state.reload_pending = True  # hot restart needs an initialized parent
            return
        base_id = self._read_base_id()
        if base_id is None:
            log.warning("no base id from Envoy; reloading with a cold restart")
            await self._restart(Reason.RELOAD, "reload without a base id")
            return
        self.metrics.count_restart(Reason.RELOAD.value)
        self.state.parents.append(current)
        await self._start(epoch=current.number + 1, base_id=base_id)

    # --- processes --------------------------------------------------------------------------

    async def _cold_start(self) -> None:
        await self._stop_all(graceful=False)  # never two Envoys on the same ports
        self._remove_family_files()
        self.state.family_started = self.clock()
        await self._start(epoch=0, base_id=None)

    async def _start(self, *, epoch: int, base_id: int | None) -> None:
        self._rendered = self.render_bootstrap()
        _write_atomically(self.bootstrap_path, self._rendered)
        argv = self._command(epoch=epoch, base_id=base_id)
        self.starts += 1
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as error:
            self.state.current = None
            self.state.down_reason = f"cannot start Envoy: {error}"
            delay = self.backoff.delay_after_exit(0.0)
            self.state.restart_at = self.clock() + delay
            log.error("cannot start %s: %s; retrying in %.2fs", argv[0], error, delay)
            return
        now = self.clock()
        health = HealthTracker(
            self.settings.health_check_threshold, self.settings.startup_grace, now
        )
        started = Epoch(process, argv, number=epoch, started_at=now, health=health)
        self.state.current = started
        self.state.down_reason = ""
        log.info("started envoy pid %d epoch %d", process.pid, epoch)
        self._spawn_task(self._wait_exit(started))
        self._spawn_task(self._poll_health(started))

    def _command(self, *, epoch: int, base_id: int | None) -> list[str]:
        settings = self.settings
        drain = max(1, math.ceil(settings.drain_duration))
        if base_id is None:
            identity = ["--use-dynamic-base-id", "--base-id-path", str(self.base_id_path)]
        else:
            identity = ["--base-id", str(base_id)]
        argv = [
            settings.envoy_path(),
            "-c", str(self.bootstrap_path),
            *identity,
            "--restart-epoch", str(epoch),
            "--drain-time-s", str(drain),
            "--parent-shutdown-time-s", str(drain + 1),
        ]  # fmt: skip
        # As Istio: concurrency 0 leaves Envoy its default (a worker per CPU); so does a log
        # level made of component levels only (`misc:error`) for the level itself.
        if settings.concurrency:
            argv += ["--concurrency", str(settings.concurrency)]
        level, components = split_log_level(settings.log_level)
        if level:
            argv += ["--log-level", level]
        if components:
            argv += ["--component-log-level", ",".join(components)]
        return argv

    async def _stop_all(self, *, graceful: bool) -> None:
        """Stop every epoch and wait until each is gone, so ports are free for a cold start."""
        epochs = [e for e in (self.state.current, *self.state.parents) if e is not None]
        self.state.current = None
        self.state.parents = []
        self.metrics.ready = False
        for epoch in epochs:
            await _terminate(epoch.process, graceful=graceful)

    async def _drain_until_idle(self) -> None:
        """Drain the listeners; wait for the drain duration or the last connection."""
        began = self.clock()
        deadline = began + self.settings.drain_duration
        accepted = await self.admin.drain_listeners(inbound_only=self.drain_inbound_only)
        log.info(
            "draining Envoy for up to %s: its %s%s",
            format_duration(self.settings.drain_duration),
            self._drained,
            "" if accepted else " (its admin API refused the drain request)",
        )
        current = self.state.current
        left = None
        while self.clock() < deadline and current is not None and current.running:
            left = await self.admin.active_connections()
            if left == 0:
                break
            await asyncio.sleep(0.05)
        took = self.clock() - began
        connections = "no" if left == 0 else "unknown" if left is None else str(left)
        log.info("drain ended after %.2fs with %s connections open", took, connections)

    # --- background watchers (they only report) -----------------------------------------

    async def _wait_exit(self, epoch: Epoch) -> None:
        await self._relay_output(epoch)  # until Envoy closes its end: it has exited
        await epoch.process.wait()
        self._events.put_nowait(_Event(_Kind.EXITED, epoch))

    async def _relay_output(self, epoch: Epoch) -> None:
        """Pass Envoy's output on to the agent's, keeping its end for the exit's post-mortem."""
        stream = epoch.process.stdout
        assert stream is not None
        while chunk := await stream.read(65536):
            epoch.output_tail = (epoch.output_tail + chunk)[-_OUTPUT_TAIL:]
            # A closed or broken stderr must not stop the reading: Envoy would block on a
            # full pipe, and its exit would go unnoticed.
            with contextlib.suppress(OSError, ValueError):
                self.envoy_output.write(chunk)
                self.envoy_output.flush()

    async def _poll_health(self, epoch: Epoch) -> None:
        while epoch.running and epoch is self.state.current:
            began = self.clock()
            observation = await self.admin.observe()
            verdict = judge_readiness(running=True, observation=observation)
            self.metrics.ready = verdict.ready
            if observation.state == "LIVE" and not epoch.live:
                epoch.live = True
                if self.state.reload_pending:
                    self.state.reload_pending = False
                    self.request_reload()
            if epoch.health.record(ok=observation.state is not None, now=self.clock()):
                if epoch.running and epoch is self.state.current:
                    self._events.put_nowait(_Event(_Kind.UNHEALTHY, epoch))
                return
            await asyncio.sleep(max(0.0, self._poll_period(epoch) - (self.clock() - began)))
        self.metrics.ready = False

    def _poll_period(self, epoch: Epoch) -> float:
        interval = self.settings.health_check_interval
        starting = self.clock() - epoch.started_at < self.settings.startup_grace
        return min(interval, _STARTUP_POLL) if starting and not epoch.live else interval

    async def _watch_inputs(self) -> None:
        """Hot-restart when the bootstrap Envoy would get differs from the one it has."""
        while True:
            await asyncio.sleep(self.settings.reload_check_interval)
            if self._rendered and self.render_bootstrap() != self._rendered:
                log.info("bootstrap inputs changed; reloading")
                self.request_reload()

    def _spawn_task(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- files -------------------------------------------------------------------------------

    def _read_base_id(self) -> int | None:
        try:
            return int(self.base_id_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _remove_family_files(self) -> None:
        base_id = self._read_base_id()
        if base_id is not None:
            shm_path(base_id).unlink(missing_ok=True)
        self.base_id_path.unlink(missing_ok=True)


async def _terminate(process: asyncio.subprocess.Process, *, graceful: bool) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            await asyncio.wait_for(process.wait(), _KILL_WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()


def _decode(epoch: Epoch) -> str:
    return epoch.output_tail.decode(errors="replace")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, path)
