"""A directory of Kubernetes-style YAML as a source of mesh resources.

Each file stands or falls on its own: when a file cannot be read, or any document in it is
invalid, the file's last good content stays in force and the problem is reported (logged once,
and listed by /debug/configz) until the file is fixed. A resource defined in two files is taken
from the later file (sorted by path), as `kubectl apply` of both would leave it.

Files are read and parsed off the event loop, in `READERS` threads, each file on its own: a
10 MB file takes seconds, and must delay neither /ready, nor the xDS streams, nor an edit of
another file (docs/decisions.md). What they find is applied here, on the loop. Watching the
directory is watching.py's part.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from istiolite.api import Resource
from istiolite.discovery.files.reading import (
    EMPTY,
    Busy,
    Content,
    Gone,
    Outcome,
    Same,
    Unreadable,
    read_file,
)
from istiolite.sources import scan, wanted

log = logging.getLogger(__name__)

# Two: a file that takes seconds to parse leaves one thread for every other edit; more would
# only share the GIL, and the memory of parsing several large files at once.
READERS = 2

# How long a file that was read empty (after having content) stays as it was: writing a file in
# place truncates it first, and a writer may be descheduled between truncating and writing.
EMPTIED_SETTLE = 0.2

OnChange = Callable[[float], None]  # called with the time of the file event behind the change


@dataclass
class FileState:
    resources: list[Resource] = field(default_factory=list)  # last good content
    documents: dict[str, list[Resource]] = field(default_factory=dict)  # by document text
    digest: bytes | None = None  # of the bytes last read, valid or not
    errors: list[str] = field(default_factory=list)  # problems with the bytes last read
    unreadable: str | None = None  # why the file cannot be read now

    def problems(self) -> list[str]:
        return [self.unreadable] if self.unreadable else self.errors


class FileRegistry:
    def __init__(
        self, directory: Path, on_change: OnChange, *, readers: Executor | None = None
    ) -> None:
        # Absolute, as the watch reports paths: a file must have one key, whichever found it.
        self.directory = directory.absolute()
        self.on_change = on_change
        self.files: dict[Path, FileState] = {}
        self.unlisted: dict[Path, str] = {}  # directories that could not be listed, and why
        self._merged: list[Resource] | None = None  # resources(), until a file changes
        self._readers = readers or ThreadPoolExecutor(READERS, thread_name_prefix="config-read")
        self._queued: dict[Path, float] = {}  # path -> its earliest event not yet read
        self._reading: dict[Path, asyncio.Task[None]] = {}

    # --- what the mesh sees ----------------------------------------------------------------

    def resources(self) -> list[Resource]:
        if self._merged is None:
            latest: dict[tuple[str, str], Resource] = {}
            for path in sorted(self.files):
                for r in self.files[path].resources:
                    latest[r.KIND, r.meta.key] = r
            self._merged = list(latest.values())
        return list(self._merged)

    def errors(self) -> dict[str, list[str]]:
        found = {str(p): s.problems() for p, s in self.files.items() if s.problems()}
        found.update((str(p), [message]) for p, message in self.unlisted.items())
        return dict(sorted(found.items()))

    # --- reading, synchronously (the initial load, and tests) ------------------------------

    def load(self, path: Path) -> bool:
        """(Re)read one file; return whether the mesh's resources changed."""
        return self.commit(path, self._reading_of(path, None)())

    def load_all(self) -> None:
        """Read every file: the state the watch then keeps up to date. No change is signalled."""
        found = scan(self.directory, self.directory)
        self.unlisted = found.unlisted
        for path in found.files:
            self.load(path)

    def apply(self, paths: Iterable[Path], at: float | None = None) -> None:
        """Reload these paths now; signal a change when the mesh's resources changed."""
        changed = False
        for path in paths:
            if wanted(path, self.directory):
                changed = self.load(path) or changed
        if changed:
            self.on_change(time.monotonic() if at is None else at)

    # --- reading off the event loop ----------------------------------------------------------

    def reload(self, path: Path, at: float) -> None:
        """Read `path` again in a reader thread, then apply it; `at`: when the event came.

        A file is read by one task at a time: events that come while it is being read make
        that task read it once more when it is done, so the last read sees the last write.
        """
        self._queued[path] = min(at, self._queued.get(path, at))
        if path not in self._reading:
            self._reading[path] = asyncio.create_task(self._reader(path), name=f"read {path}")

    async def settled(self, paths: Iterable[Path] | None = None) -> None:
        """Wait until these files (default: all) asked for have been read and applied."""
        only = None if paths is None else set(paths)
        while tasks := [t for p, t in self._reading.items() if only is None or p in only]:
            await asyncio.wait(tasks)

    def stop_reading(self) -> None:
        for task in self._reading.values():
            task.cancel()
        # A parse under way finishes on its own; nothing queued behind it starts.
        self._readers.shutdown(wait=False, cancel_futures=True)

    async def _reader(self, path: Path) -> None:
        """Read `path` until no event for it is left, applying only what a read found last."""
        emptied_once = False
        unapplied: Content | None = None  # read, but overtaken by a later event
        since = math.inf  # the first event of what was read but not applied yet
        try:
            while path in self._queued:
                at = min(self._queued.pop(path), since)
                outcome = await self._read(path, unapplied)
                if isinstance(outcome, Same) and unapplied is not None:
                    outcome = unapplied  # the event was the end of the write already read
                unapplied, since = None, math.inf
                if path in self._queued:
                    # Written again meanwhile: what was read may be half a write. Kept, so that
                    # reading the same bytes again costs no second parse.
                    unapplied = outcome if isinstance(outcome, Content) else None
                    since = at
                elif not emptied_once and self._emptied(path, outcome):
                    # Writing a file in place truncates it first. Its content is dropped only
                    # if it is still empty a moment later, as a removal waits (watching.py).
                    emptied_once = True
                    await asyncio.sleep(EMPTIED_SETTLE)
                    self._queued.setdefault(path, at)
                elif self.commit(path, outcome):
                    self.on_change(at)
        finally:
            del self._reading[path]

    async def _read(self, path: Path, unapplied: Content | None) -> Outcome:
        read = self._reading_of(path, unapplied)  # taken here: the state changes on the loop
        started = time.monotonic()
        outcome = await asyncio.get_running_loop().run_in_executor(self._readers, read)
        elapsed = 1000 * (time.monotonic() - started)
        log.debug("read %s in %.0f ms: %s", path, elapsed, type(outcome).__name__)
        return outcome

    def _emptied(self, path: Path, outcome: Outcome) -> bool:
        state = self.files.get(path)
        return (
            isinstance(outcome, Content)
            and outcome.digest == EMPTY
            and bool(state and state.resources)
        )

    def _reading_of(self, path: Path, unapplied: Content | None) -> Callable[[], Outcome]:
        """A call that reads `path` against its current state (or what was read of it last
        but not applied), to run on any thread."""
        state = self.files.get(path)
        digest = state.digest if state else None
        known = dict(state.documents) if state else {}
        if unapplied is not None:
            digest = unapplied.digest
            known.update(unapplied.documents)

        def read() -> Outcome:
            try:
                return read_file(path, digest=digest, known=known)
            except Exception as e:  # a bug of ours: the file still stands or falls on its own
                log.exception("reading %s failed", path)
                return Unreadable(f"cannot be read: {type(e).__name__}: {e}")

        return read

    # --- applying what was read (on the loop) ------------------------------------------------

    def commit(self, path: Path, outcome: Outcome) -> bool:
        """Apply one file's outcome; return whether the mesh's resources changed."""
        if isinstance(outcome, Gone):
            return self._forget(path)
        state = self.files.setdefault(path, FileState())
        if isinstance(outcome, Unreadable):
            if outcome.message != state.unreadable:
                log.warning("keeping the last good content of %s: %s", path, outcome.message)
            state.unreadable = outcome.message
            return False
        if state.unreadable is not None:
            log.info("%s can be read again", path)
            state.unreadable = None
        if isinstance(outcome, Same | Busy):
            return False
        return self._take(path, state, outcome)

    def _forget(self, path: Path) -> bool:
        state = self.files.pop(path, None)
        if state is None or not state.resources:
            return False
        log.info("%s is gone: its %d resource(s) with it", path, len(state.resources))
        self._merged = None
        return True

    def _take(self, path: Path, state: FileState, content: Content) -> bool:
        state.digest = content.digest
        if content.errors:
            if content.errors != state.errors:  # logged once, not on every touch
                for message in content.errors:
                    log.warning("keeping the last good content of %s: %s", path, message)
            state.errors = content.errors
            return False
        if state.errors:
            log.info("%s is valid again", path)
        state.errors = []
        # Keep the objects of resources that did not change: configuration built from them is
        # cached by identity, so an edit to one resource rebuilds only what depends on it.
        earlier = {(r.KIND, r.meta.key): r for r in state.resources}
        documents = [
            (doc, found if doc in state.documents else [_kept(earlier, r) for r in found])
            for doc, found in content.documents
        ]
        resources = [r for _, found in documents for r in found]
        changed = resources != state.resources
        state.resources, state.documents = resources, dict(documents)
        if changed:
            self._merged = None
        return changed

    def tracked_under(self, directory: Path) -> list[Path]:
        """The files read from under `directory` (which may be gone)."""
        return [p for p in self.files if directory in p.parents]


def _kept(earlier: dict[tuple[str, str], Resource], resource: Resource) -> Resource:
    old = earlier.get((resource.KIND, resource.meta.key))
    return old if old == resource else resource
