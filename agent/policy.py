"""The supervisor's decisions, as small pure objects: when to restart, when Envoy is sick,
when restarting is no use, and whether the proxy is ready. No I/O and no clock of their own;
callers pass the time in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before restarting a crashed Envoy.

    The first crash restarts at once, because a single crash is usually a one-off and every
    millisecond down is traffic refused. Crashes in a row wait `base`, `2*base`, ... up to
    `cap`, so an Envoy that cannot start does not burn the CPU. An Envoy that stayed up for
    `stable_period` earns the immediate restart back.
    """

    base: float
    cap: float
    stable_period: float
    crashes_in_a_row: int = 0

    def delay_after_exit(self, uptime: float) -> float:
        if uptime >= self.stable_period:
            self.crashes_in_a_row = 0
        exponent = self.crashes_in_a_row - 1
        self.crashes_in_a_row += 1
        if exponent < 0:
            return 0.0
        return min(self.cap, self.base * 2.0**exponent)


@dataclass(slots=True)
class HealthTracker:
    """Counts consecutive failed admin polls of one Envoy process.

    A new Envoy needs a moment to open its admin port, so refusals before its first answer
    only count once `startup_grace` has passed since it was started.
    """

    threshold: int
    startup_grace: float
    started_at: float
    failures: int = 0
    answered: bool = False

    def record(self, *, ok: bool, now: float) -> bool:
        """Record one poll; True when the process should be killed and restarted."""
        if ok:
            self.answered = True
            self.failures = 0
            return False
        if not self.answered and now - self.started_at < self.startup_grace:
            return False
        self.failures += 1
        return self.failures >= self.threshold


@dataclass(frozen=True, slots=True)
class EnvoyExit:
    """How one Envoy process ended."""

    code: int  # its exit status; negative: the signal that ended it
    went_live: bool  # it had been LIVE, so this is a crash, not a failed start-up
    # Envoy's own check (`--mode validate`) refuses the arguments and bootstrap it was given.
    config_rejected: bool = False
    errors: tuple[str, ...] = ()  # its last error lines (`error_lines`)

    @property
    def may_be_config(self) -> bool:
        """Worth asking Envoy whether its configuration is to blame: it exited with an error
        status (a signal is no verdict on arguments) before it was ever LIVE."""
        return self.code > 0 and not self.went_live


@dataclass(slots=True)
class StartupFailures:
    """Start-ups in a row that Envoy ended the same way, refusing its arguments or bootstrap.

    A restart cannot mend those: the next Envoy gets the same arguments and bootstrap. After
    `limit` of them the agent exits, so the kubelet shows CrashLoopBackOff with Envoy's error
    instead of a pod that stays not-ready with the reason in a log. Everything else still heals:
    a crash after LIVE, an exit that Envoy's check does not blame on its configuration (a port
    another process holds, a signal), and a new error (the bootstrap changed between attempts)
    starts the count again.
    """

    limit: int
    last: EnvoyExit | None = None
    in_a_row: int = 0

    def give_up(self, ended: EnvoyExit) -> bool:
        """Record one exit; True when the agent should stop restarting Envoy."""
        if ended.went_live or not ended.config_rejected:
            self.last, self.in_a_row = None, 0
            return False
        last = self.last
        same = last is not None and (last.code, last.errors) == (ended.code, ended.errors)
        self.in_a_row = self.in_a_row + 1 if same else 1
        self.last = ended
        return self.gave_up

    @property
    def gave_up(self) -> bool:
        return self.in_a_row >= self.limit

    def message(self) -> str:
        """Why the agent gave up, ending with Envoy's own words (a termination message)."""
        assert self.last is not None
        said = "\n".join(self.last.errors) or "(it printed no error)"
        return (
            f"Envoy exited with {self.last.code} at start-up {self.in_a_row} times in a row, "
            f"refusing its arguments or bootstrap:\n{said}"
        )


# [2026-12-03 18:08:17.111][5629][critical][main] [source/server/server.cc:449] message
_LOG_LINE = re.compile(r"\[[^]]*\]\[\d+\]\[(\w+)\]\[[^]]*\] (?:\[[^]]*\] )?(.*)")
# Protobuf's debug strings vary from run to run on purpose (a random marker, random spaces),
# so that nobody parses them; two runs that failed alike must still read alike.
_DEBUG_MARKER = re.compile(r"goo\.gle/debug\w*")
_SPACES = re.compile(r"\s+")


def error_lines(output: str, limit: int = 8) -> tuple[str, ...]:
    """Envoy's last error lines, without time, thread and source file, in a stable form.

    Kept: its error and critical log messages with their continuation lines, and what it
    prints before its log starts (option errors). Left out: lower levels, and the copy of a
    fatal error that Envoy prints again as it exits.
    """
    kept: list[str] = []
    level = "error"  # before its log starts, Envoy prints only about its command line
    for line in output.splitlines():
        match = _LOG_LINE.fullmatch(line)
        if match is not None:
            level, line = match.group(1), match.group(2)  # noqa: PLW2901 (the message part)
        text = _SPACES.sub(" ", _DEBUG_MARKER.sub("", line)).strip()
        if text and level in ("error", "critical") and not any(text in seen for seen in kept):
            kept.append(text)
    return tuple(kept[-limit:])


@dataclass(frozen=True, slots=True)
class Observation:
    """What one look at Envoy's admin API showed. `state` is None when admin did not answer."""

    state: str | None
    lds_updates: int = 0
    cds_updates: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...] = field(default=())

    def text(self) -> str:
        return "ready" if self.ready else "; ".join(self.reasons)


def judge_readiness(
    *, running: bool, observation: Observation | None, stopping: bool = False, down: str = ""
) -> Readiness:
    """Ready only while Envoy runs, is LIVE and has accepted both listeners and clusters.

    `down` says why Envoy is not running, when it is not.
    """
    if stopping:
        return Readiness(False, ("the agent is shutting down and Envoy is draining",))
    if not running or observation is None:
        return Readiness(
            False, (f"Envoy is not running: {down}" if down else "Envoy is not running",)
        )
    if observation.state is None:
        return Readiness(False, (f"Envoy admin did not answer: {observation.error}",))
    reasons = []
    if observation.state != "LIVE":
        reasons.append(f"Envoy is {observation.state}, not LIVE")
    if observation.lds_updates == 0:
        reasons.append("Envoy has not received listeners (LDS) yet")
    if observation.cds_updates == 0:
        reasons.append("Envoy has not received clusters (CDS) yet")
    return Readiness(not reasons, tuple(reasons))
