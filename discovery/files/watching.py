"""Keeping the file registry in step with its directory, whatever happens to the directory.

What pilot-discovery promises (docs/design.md, "The config directory"):
- every change under the directory reaches the registry, file by file (registry.py);
- when the directory itself disappears (removed, moved away, replaced by a file, unmounted),
  the last good configuration is kept and served, and a warning says so; when a directory is
  there again, it is read afresh and watched. Whether it is there is checked at every event
  and at least every `ROOT_POLL` seconds;
- a watch that fails (inotify's limits, a bug) is logged with its cause and started again,
  after 1, 2, 4... up to 30 seconds; `status.watching` (the `pilot_config_dir_watching` metric)
  is 0 meanwhile. The loop never ends but when asked to.

`rm -rf` deletes the files before the directory, and their events may come first. A removal is
therefore applied only once `SETTLE` seconds passed without another, and only if the directory
is still the one being watched: otherwise it was the directory that went, and its files stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import watchfiles

from istiolite.discovery.files.registry import FileRegistry
from istiolite.sources import scan, visible, wanted

log = logging.getLogger(__name__)

ROOT_POLL = 1.0
SETTLE = 0.2
RETRY_MAX = 30.0
# A failure after this long of watching is a new problem, not the previous one again.
_HEALTHY_RUN = 60.0

Identity = tuple[int, int]  # (device, inode): a directory replaced by another is not the same


@dataclass
class WatchStatus:
    watching: bool = False  # events are being received
    present: bool = True  # the directory is there
    restarts: int = 0  # watches that failed and were started again
    problem: str | None = None  # why the last watch failed


def identity(directory: Path) -> Identity | None:
    """The directory's identity; None when nothing, or no directory, is there."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


class DirectoryWatch:
    def __init__(self, registry: FileRegistry) -> None:
        self.registry = registry
        self.root = registry.directory
        self.status = WatchStatus()
        self._identity: Identity | None = None
        self._doomed: dict[Path, float] = {}  # removed files, by the time of their event
        self._settle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # resyncs and scans

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set, whatever fails on the way."""
        failures = 0
        try:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    await self._watch(stop)
                except Exception as e:
                    failures = 1 if time.monotonic() - began > _HEALTHY_RUN else failures + 1
                    delay = min(RETRY_MAX, 2.0 ** (failures - 1))
                    self.status.restarts += 1
                    self.status.problem = f"{type(e).__name__}: {e}"
                    log.error(
                        "watching %s failed, watching it again in %g s; until then its files "
                        "stay as last read: %s",
                        self.root,
                        delay,
                        self.status.problem,
                        exc_info=e,
                    )
                    await _pause(stop, delay)
        finally:
            self.status.watching = False
            self.registry.stop_reading()
            for task in self._tasks:
                task.cancel()
            if self._settle is not None:
                self._settle.cancel()

    async def _watch(self, stop: asyncio.Event) -> None:
        """One watch of one directory: ends when the directory goes or changes identity."""
        self._identity = await self._present(stop)
        if self._identity is None:
            return
        resync: asyncio.Task[None] | None = None
        try:
            # yield_on_timeout: an empty batch at least every ROOT_POLL seconds, to check on the
            # directory itself. The first batch also says that the watch is set up: only then is
            # the directory read again, so that no change can fall between the read and the watch.
            async for changes in watchfiles.awatch(
                self.root,
                stop_event=stop,
                step=2,  # the push is debounced anyway: yield soon after the last event
                debounce=1_000,
                rust_timeout=int(ROOT_POLL * 1000),
                yield_on_timeout=True,
                ignore_permission_denied=True,  # an unreadable subdirectory is reported instead
            ):
                at = time.monotonic()
                if identity(self.root) != self._identity:
                    return
                if resync is None:
                    self.status.watching, self.status.problem = True, None
                    resync = self._background(self._resync(at), "resync")
                if changes:
                    self._changed({Path(name) for _, name in changes}, at)
                if resync.done() and self._listable_again():
                    return  # watch again: a watch is only set on directories it could read
        finally:
            self.status.watching = False

    async def _present(self, stop: asyncio.Event) -> Identity | None:
        """The directory's identity, once there is one; None when stopped before."""
        found = identity(self.root)
        if found is None:
            self.status.present = False
            count = len(self.registry.resources())
            log.warning(
                "%s is gone or not a directory: serving its last good configuration "
                "(%d resources) until a directory is there again",
                self.root,
                count,
            )
            self.registry.unlisted = {
                self.root: f"{self.root}: gone, or not a directory; serving its last good "
                f"configuration until it is back"
            }
            while found is None and not stop.is_set():
                await _pause(stop, ROOT_POLL)
                found = identity(self.root)
            if found is not None:
                log.info("%s is back: reading it again", self.root)
                self.registry.unlisted.pop(self.root, None)
        self.status.present = found is not None
        return found

    def _changed(self, paths: set[Path], at: float) -> None:
        """Have the files behind these events read again."""
        under_files = {d for p in self.registry.files for d in p.parents}
        for path in paths:
            if not visible(path, self.root):
                continue
            targets = set(self.registry.tracked_under(path)) if path in under_files else set()
            if wanted(path, self.root):
                targets.add(path)
            if _is_directory(path):
                self._background(self._read_directory(path, at), f"scan {path}")
            for target in targets:
                if os.path.lexists(target):
                    self.registry.reload(target, at)
                else:
                    self._doom(target, at)

    def _listable_again(self) -> bool:
        """Whether a directory that could not be listed can be now (its mode was changed)."""
        for directory in self.registry.unlisted:
            with contextlib.suppress(OSError), os.scandir(directory):
                return True
        return False

    async def _resync(self, at: float) -> None:
        """Read the whole directory again: events may have been missed before the watch
        (re)started, and a directory that came back may hold anything.

        Files whose bytes did not change cost a read, not a parse. Files no longer there are
        dropped only once those there have been read (and as removals are: if the directory
        is still the one watched), so that proxies never see a half-read directory.
        """
        found = await asyncio.get_running_loop().run_in_executor(None, scan, self.root, self.root)
        self.registry.unlisted = found.unlisted
        for path in found.files:
            self.registry.reload(path, at)
        await self.registry.settled(found.files)
        for path in set(self.registry.files) - set(found.files):
            self._doom(path, at)

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` beside the watch, which must go on taking events meanwhile."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s of %s failed", task.get_name(), self.root, exc_info=error)

    async def _read_directory(self, directory: Path, at: float) -> None:
        """A directory that appeared (mkdir, mv): its files come without events of their own."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, scan, directory, self.root)
        self.registry.unlisted.update(found.unlisted)
        for path in found.files:
            self.registry.reload(path, at)

    def _doom(self, path: Path, at: float) -> None:
        self._doomed[path] = min(at, self._doomed.get(path, at))
        if self._settle is not None:
            self._settle.cancel()
        self._settle = asyncio.get_running_loop().call_later(SETTLE, self._remove_doomed)

    def _remove_doomed(self) -> None:
        doomed, self._doomed, self._settle = self._doomed, {}, None
        if identity(self.root) != self._identity:
            return  # the directory itself went: its files stay until it is back
        for path, at in doomed.items():
            self.registry.reload(path, at)  # read again: it may be back, else it is gone


def _is_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
