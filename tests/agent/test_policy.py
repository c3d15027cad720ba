"""The supervisor's pure decisions: restart backoff, hang detection, when to give up,
readiness."""

from __future__ import annotations

import pytest

from istiolite.agent.policy import (
    Backoff,
    EnvoyExit,
    HealthTracker,
    Observation,
    StartupFailures,
    error_lines,
    judge_readiness,
)


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


# --- when restarting is no use ---------------------------------------------------------------

LEVEL = ("error: invalid log level specified 'loud'",)
BOOTSTRAP = ("error `Unable to parse JSON as proto` initializing config '/p/envoy-rev.json'",)


def refused(errors: tuple[str, ...] = LEVEL, code: int = 1) -> EnvoyExit:
    return EnvoyExit(code, went_live=False, config_rejected=True, errors=errors)


PORT_TAKEN = EnvoyExit(1, went_live=False, config_rejected=False, errors=("cannot bind",))
CRASHED_LIVE = EnvoyExit(-11, went_live=True)
KILLED = EnvoyExit(-9, went_live=False)


@pytest.mark.parametrize(
    ("exits", "verdicts"),
    [
        # The same refusal, limit times in a row: give up on the last.
        ([refused()] * 3, [False, False, True]),
        # A crash after LIVE heals, and starts the count again.
        ([refused(), refused(), CRASHED_LIVE, refused(), refused()], [False] * 5),
        # An exit Envoy's check does not blame on its configuration heals too.
        ([refused(), refused(), PORT_TAKEN, refused(), refused(), refused()], [False] * 5 + [True]),
        ([refused(), KILLED, refused(), refused()], [False] * 4),
        # A different refusal (the bootstrap changed in between) starts the count again.
        ([refused(), refused(), refused(BOOTSTRAP), refused(BOOTSTRAP)], [False] * 4),
        ([refused(), refused(code=2), refused(), refused()], [False] * 4),
        # An environmental failure, however often, is never a reason to give up.
        ([PORT_TAKEN] * 10, [False] * 10),
    ],
)
def test_the_agent_gives_up_only_on_the_same_refusal_limit_times_in_a_row(
    exits: list[EnvoyExit], verdicts: list[bool]
) -> None:
    failures = StartupFailures(limit=3)
    assert [failures.give_up(ended) for ended in exits] == verdicts


def test_a_limit_of_one_gives_up_on_the_first_refusal() -> None:
    assert StartupFailures(limit=1).give_up(refused())


def test_the_message_ends_with_envoys_own_words() -> None:
    failures = StartupFailures(limit=2)
    failures.give_up(refused())
    failures.give_up(refused())
    assert failures.message() == (
        "Envoy exited with 1 at start-up 2 times in a row, refusing its arguments or bootstrap:\n"
        "error: invalid log level specified 'loud'"
    )


@pytest.mark.parametrize(
    ("ended", "worth_asking"),
    [
        (EnvoyExit(1, went_live=False), True),
        (EnvoyExit(1, went_live=True), False),  # it ran: a crash, not its configuration
        (EnvoyExit(-9, went_live=False), False),  # a signal says nothing about arguments
        (EnvoyExit(0, went_live=False), False),
    ],
)
def test_only_an_error_exit_before_live_is_checked_against_the_configuration(
    ended: EnvoyExit, worth_asking: bool
) -> None:
    assert ended.may_be_config == worth_asking


# Envoy 1.40's output, as the agent relays it (timestamps, thread ids, random debug markers).
BAD_LOG_LEVEL_OUTPUT = "error: invalid log level specified 'loud'\n"
BAD_JSON_OUTPUT = """\
[2026-12-03 18:14:48.379][14636][info][main] [source/server/server.cc:463] initializing epoch 0
[2026-12-03 18:14:48.380][14636][info][main] [source/server/server.cc:465] statically linked extensions:
[2026-12-03 18:14:48.382][14636][critical][main] [source/server/server.cc:449] error `Unable to parse JSON as proto (INVALID_ARGUMENT: unexpected EOF): {bad
` initializing config 'goo.gle/debugonly  
  /etc/istio/proxy/envoy-rev.json'
[2026-12-03 18:14:48.382][14636][info][main] [source/server/server.cc:1159] exiting
Unable to parse JSON as proto (INVALID_ARGUMENT: unexpected EOF): {bad

"""  # noqa: E501, W291
UNKNOWN_FIELD_OUTPUT = """\
[2026-12-03 18:08:17.237][5637][critical][main] [source/server/server.cc:449] error `Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT: invalid JSON   in  envoy.config.bootstrap.v3.Bootstrap,   near  1:8 (offset  7): no such field:   'foo') has unknown fields` initializing config 'goo.gle/debugstr  
  /p/envoy-rev.json'
Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason INVALID_ARGUMENT: invalid JSON   in  envoy.config.bootstrap.v3.Bootstrap,   near  1:8 (offset  7): no such field:   'foo') has unknown fields
"""  # noqa: E501, W291
OPTION_OUTPUT = """\
PARSE ERROR: Argument: (--concurrency)
             Couldn't read argument value from string 'abc'

Brief USAGE: 
   envoy [--base-id <uint32_t>] [--] [--version] [-h]

For complete USAGE and HELP type: 
   envoy --help

(--concurrency) -- Couldn't read argument value from string 'abc'
"""  # noqa: W291


@pytest.mark.parametrize(
    ("output", "lines"),
    [
        (BAD_LOG_LEVEL_OUTPUT, ("error: invalid log level specified 'loud'",)),
        (
            BAD_JSON_OUTPUT,
            (
                "error `Unable to parse JSON as proto (INVALID_ARGUMENT: unexpected EOF): {bad",
                "` initializing config '",
                "/etc/istio/proxy/envoy-rev.json'",
            ),
        ),
        (
            UNKNOWN_FIELD_OUTPUT,
            (
                "error `Protobuf message (type envoy.config.bootstrap.v3.Bootstrap reason "
                "INVALID_ARGUMENT: invalid JSON in envoy.config.bootstrap.v3.Bootstrap, near 1:8 "
                "(offset 7): no such field: 'foo') has unknown fields` initializing config '",
                "/p/envoy-rev.json'",
            ),
        ),
        ("[2026-12-03 18:14:48.379][1][info][main] [source/x.cc:1] all good\n", ()),
    ],
)
def test_envoys_error_lines_leave_out_time_thread_source_and_info(
    output: str, lines: tuple[str, ...]
) -> None:
    assert error_lines(output) == lines


def test_option_errors_keep_their_last_lines() -> None:
    lines = error_lines(OPTION_OUTPUT, limit=3)
    assert lines[-1] == "(--concurrency) -- Couldn't read argument value from string 'abc'"
    assert len(lines) == 3


def test_two_runs_that_failed_alike_read_alike() -> None:
    """Protobuf varies its debug strings between runs: a marker and spacing, on purpose."""
    other_run = (
        UNKNOWN_FIELD_OUTPUT.replace("goo.gle/debugstr  ", "goo.gle/debugonly ")
        .replace("JSON   in", "JSON in")
        .replace("][5637][", "][6001][")
    )
    assert error_lines(other_run) == error_lines(UNKNOWN_FIELD_OUTPUT)
