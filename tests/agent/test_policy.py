"""The supervisor's pure decisions: restart backoff, hang detection, readiness."""

from __future__ import annotations

import pytest

from istiolite.agent.policy import Backoff, HealthTracker, Observation, judge_readiness


def test_first_crash_restarts_at_once_then_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.2, cap=5.0, stable_period=10.0)
    delays = [backoff.delay_after_exit(uptime=0.5) for _ in range(9)]
    assert delays == [0.0, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_stable_period_earns_the_immediate_restart_back() -> None:
    backoff = Backoff(base=0.2, cap=5.0, stable_period=10.0)
    for _ in range(5):
        backoff.delay_after_exit(uptime=1.0)
    assert backoff.delay_after_exit(uptime=10.0) == 0.0
    assert backoff.delay_after_exit(uptime=1.0) == 0.2


def test_a_run_shorter_than_the_stable_period_keeps_backing_off() -> None:
    backoff = Backoff(base=1.0, cap=4.0, stable_period=10.0)
    assert [backoff.delay_after_exit(uptime=9.9) for _ in range(4)] == [0.0, 1.0, 2.0, 4.0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def test_hang_is_declared_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    tracker = HealthTracker(threshold=3, startup_grace=5.0, started_at=clock.now)
    assert not tracker.record(ok=True, now=clock.advance(0.1))
    verdicts = [tracker.record(ok=False, now=clock.advance(1.0)) for _ in range(3)]
    assert verdicts == [False, False, True]


def test_one_good_poll_resets_the_failure_count() -> None:
    clock = FakeClock()
    tracker = HealthTracker(threshold=3, startup_grace=5.0, started_at=clock.now)
    tracker.record(ok=True, now=clock.advance(0.1))
    tracker.record(ok=False, now=clock.advance(1.0))
    tracker.record(ok=False, now=clock.advance(1.0))
    tracker.record(ok=True, now=clock.advance(1.0))
    assert not tracker.record(ok=False, now=clock.advance(1.0))
    assert not tracker.record(ok=False, now=clock.advance(1.0))
    assert tracker.record(ok=False, now=clock.advance(1.0))


def test_a_starting_envoy_gets_a_grace_period_before_refusals_count() -> None:
    clock = FakeClock()
    tracker = HealthTracker(threshold=2, startup_grace=5.0, started_at=clock.now)
    assert not any(tracker.record(ok=False, now=clock.advance(1.0)) for _ in range(4))
    assert not tracker.record(ok=False, now=clock.advance(1.0))  # 5 s: grace over, failure 1
    assert tracker.record(ok=False, now=clock.advance(1.0))


def test_an_envoy_that_answered_once_gets_no_more_grace() -> None:
    clock = FakeClock()
    tracker = HealthTracker(threshold=2, startup_grace=60.0, started_at=clock.now)
    tracker.record(ok=True, now=clock.advance(0.1))
    tracker.record(ok=False, now=clock.advance(0.1))
    assert tracker.record(ok=False, now=clock.advance(0.1))


LIVE = Observation("LIVE", lds_updates=1, cds_updates=1)


@pytest.mark.parametrize(
    ("running", "observation", "stopping", "expected"),
    [
        (True, LIVE, False, "ready"),
        (False, None, False, "Envoy is not running: exited with 1"),
        (True, LIVE, True, "the agent is shutting down and Envoy is draining"),
        (
            True,
            Observation(None, error="timed out"),
            False,
            "Envoy admin did not answer: timed out",
        ),
        (
            True,
            Observation("INITIALIZING"),
            False,
            "Envoy is INITIALIZING, not LIVE; Envoy has not received listeners (LDS) yet; "
            "Envoy has not received clusters (CDS) yet",
        ),
        (
            True,
            Observation("LIVE", cds_updates=2),
            False,
            "Envoy has not received listeners (LDS) yet",
        ),
        (True, Observation("DRAINING", 1, 1), False, "Envoy is DRAINING, not LIVE"),
    ],
)
def test_readiness_tells_which_condition_fails(
    running: bool, observation: Observation | None, stopping: bool, expected: str
) -> None:
    verdict = judge_readiness(
        running=running, observation=observation, stopping=stopping, down="exited with 1"
    )
    assert verdict.text() == expected
    assert verdict.ready == (expected == "ready")
