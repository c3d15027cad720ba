"""The supervisor's decisions, as small pure objects: when to restart, when Envoy is sick,
and whether the proxy is ready. No I/O and no clock of their own; callers pass the time in.
"""

from __future__ import annotations

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
