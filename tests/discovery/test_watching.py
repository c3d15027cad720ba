"""The directory watch is never gone silently: a failure is logged with its cause, shown, and the
watch starts again, with no edit lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import watchfiles

from istiolite.discovery.files import DirectoryWatch, FileRegistry
from istiolite.testing.wait import eventually_async


def service(name: str) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
        f"spec: {{ports: [{{name: http, port: 80}}]}}\n"
    )


async def test_a_failing_watch_is_logged_shown_and_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = watchfiles.awatch
    calls = 0

    def awatch(*args: Any, **kwargs: Any) -> AsyncIterator[set[watchfiles.main.FileChange]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(28, "inotify watch limit reached")
        return real(*args, **kwargs)

    monkeypatch.setattr(watchfiles, "awatch", awatch)
    changes: list[float] = []
    registry = FileRegistry(tmp_path, changes.append)
    registry.load_all()
    watch = DirectoryWatch(registry)
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        await eventually_async(lambda: watch.status.restarts == 1, what="the failure")
        assert not watch.status.watching
        assert "inotify watch limit reached" in str(watch.status.problem)
        [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "watching it again" in record.getMessage()
        assert "inotify watch limit reached" in record.getMessage()

        (tmp_path / "a.yaml").write_text(service("a"))  # while no watch runs: found by resync
        await eventually_async(lambda: watch.status.watching, what="the watch again")
        await eventually_async(lambda: len(registry.resources()) == 1, what="the missed edit")
        (tmp_path / "b.yaml").write_text(service("b"))
        await eventually_async(lambda: len(registry.resources()) == 2, what="a later edit")
    finally:
        stop.set()
        await task
    assert changes, "changes are signalled"
