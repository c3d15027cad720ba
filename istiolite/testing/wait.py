"""Waiting for something to hold: the one polling helper of tests, benchmarks and scenarios.

A check answers "not yet" with None or False; anything else is the answer, and is returned, so
a check can hand back what it found (the replies that proved a route, the proxies connected).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None], *, what: str, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Call `check` until it answers; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if _answered(result):
            return result  # type: ignore[return-value]  # None was ruled out
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], T | None], *, what: str, within: float = 30.0, interval: float = 0.1
) -> T:
    """`eventually` for tests on an event loop: it sleeps without blocking the loop."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if _answered(result):
            return result  # type: ignore[return-value]  # None was ruled out
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within:g}s: {what}")
        await asyncio.sleep(interval)


def _answered(result: object) -> bool:
    return result is not None and result is not False
