"""Strict durations, as Istio's YAML writes them: `1.5s`, `100ms`, `1m30s`, `2h`.

Istio accepts Go duration strings. We accept the same grammar but nothing looser: no bare
numbers (is `5` seconds or milliseconds?), no signs, no spaces, no empty string.
"""

from __future__ import annotations

import re
from datetime import timedelta

_NANOS_PER_UNIT = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "µs": 1_000,
    "ns": 1,
}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_MAX = timedelta(days=365 * 100)


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration; raise DurationError with a message a user can act on.

    Durations are accurate to the millisecond, as Istio validates them: `1500us` is refused
    rather than silently rounded.
    """
    nanos = parse_nanos(text)
    if nanos % 1_000_000:
        raise DurationError(
            f"durations are accurate to the millisecond (Istio's rule), got {text!r}"
        )
    value = timedelta(milliseconds=nanos // 1_000_000)
    if value > _MAX:
        raise DurationError(f"duration {text!r} is too large")
    return value


def parse_nanos(text: str) -> int:
    """A Go-style duration in nanoseconds, without the millisecond rule."""
    pos, nanos = 0, 0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        nanos += round(float(m.group(1)) * _NANOS_PER_UNIT[m.group(2)])
        pos = m.end()
    if not text or pos != len(text):
        raise DurationError(
            f"must be a duration such as '1.5s', '100ms' or '1m30s' "
            f"(units h, m, s, ms, us, ns), got {text!r}"
        )
    return nanos


def format_duration(value: timedelta) -> str:
    """The shortest exact Go-style spelling, used in messages and debug output."""
    micros = round(value.total_seconds() * 1_000_000)
    if micros % 1_000_000 == 0:
        return f"{micros // 1_000_000}s"
    if micros % 1000 == 0:
        return f"{micros // 1000}ms"
    return f"{micros}us"
