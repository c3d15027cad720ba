"""The debouncer coalesces a burst into one push, and prepares it during the quiet period."""

from __future__ import annotations

import asyncio
import time

from istiolite.discovery.server import Debouncer
from istiolite.testing.wait import eventually_async


async def test_a_burst_is_prepared_once_while_quiet_and_flushed_once_after() -> None:
    events: list[tuple[str, float]] = []
    started = time.monotonic()

    async def prepare() -> None:
        events.append(("prepare", time.monotonic() - started))
        await asyncio.sleep(0.02)
        events.append(("prepared", time.monotonic() - started))

    async def flush(first: float) -> None:
        events.append(("flush", time.monotonic() - started))

    debouncer = Debouncer(flush, after=0.1, cap=5, prepare=prepare)
    task = asyncio.create_task(debouncer.run())
    for _ in range(3):  # a burst: marks closer together than the quiet period
        debouncer.mark()
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.3)
    task.cancel()
    assert [name for name, _ in events] == ["prepare", "prepared", "flush"]
    at = dict(events)
    assert at["prepare"] < 0.01  # at the first mark, not after the quiet period
    assert at["flush"] >= 0.06 + 0.1  # quiet for `after` since the last mark


async def test_a_slow_prepare_delays_the_flush_until_it_is_done() -> None:
    order: list[str] = []

    async def prepare() -> None:
        await asyncio.sleep(0.25)
        order.append("prepared")

    async def flush(first: float) -> None:
        order.append("flush")

    debouncer = Debouncer(flush, after=0.05, cap=5, prepare=prepare)
    task = asyncio.create_task(debouncer.run())
    debouncer.mark()
    await asyncio.sleep(0.4)
    task.cancel()
    assert order == ["prepared", "flush"]


async def test_a_change_marked_late_counts_from_when_it_happened() -> None:
    """A file's change is marked once it is parsed, which may take seconds: the push's latency
    (its log line, the convergence metric) counts from the file event, not from the mark."""
    flushed: list[float] = []

    async def flush(first: float) -> None:
        flushed.append(first)

    debouncer = Debouncer(flush, after=0.01, cap=5)
    task = asyncio.create_task(debouncer.run())
    event = time.monotonic() - 3.0  # the file event, three seconds of parsing ago
    debouncer.mark()
    debouncer.mark(at=event)
    await eventually_async(lambda: bool(flushed), what="the flush")
    task.cancel()
    assert flushed == [event]
