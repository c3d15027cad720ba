"""A directory of Kubernetes-style YAML as a source of mesh resources, watched for changes.

Each file stands or falls on its own: when any document in a file is invalid, the file's last
good content stays in force and the errors are reported (log, /debug/configz) until the file is
fixed. A resource defined in two files is taken from the later file (sorted by path), as
`kubectl apply` of both would leave it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from istiolite.api import Resource, parse_yaml

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class FileState:
    resources: list[Resource] = field(default_factory=list)  # last good content
    errors: list[str] = field(default_factory=list)  # problems with the current content


def _wanted(path: Path) -> bool:
    return path.suffix in SUFFIXES and not path.name.startswith(".")


class FileRegistry:
    def __init__(self, directory: Path, on_change: Callable[[], None]) -> None:
        self.directory = directory
        self.on_change = on_change
        self.files: dict[Path, FileState] = {}

    def load(self, path: Path) -> bool:
        """(Re)read one file; return whether the mesh's resources changed."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return self.files.pop(path, None) is not None
        except OSError as e:
            self._state(path).errors = [f"{path}: cannot read: {e.strerror or e}"]
            return False
        parsed = parse_yaml(text, source=str(path))
        errors = [str(p.error) for p in parsed if p.error is not None]
        state = self._state(path)
        state.errors = errors
        if errors:
            for message in errors:
                log.warning("keeping the last good content of %s: %s", path, message)
            return False
        # Keep the objects of resources that did not change: configuration built from them is
        # cached by identity, so an edit to one resource rebuilds only what depends on it.
        earlier = {(r.KIND, r.meta.key): r for r in state.resources}
        resources = []
        for p in parsed:
            if p.resource is not None:
                old = earlier.get((p.resource.KIND, p.resource.meta.key))
                resources.append(old if old == p.resource else p.resource)
        changed = resources != state.resources
        state.resources = resources
        return changed

    def _state(self, path: Path) -> FileState:
        return self.files.setdefault(path, FileState())

    def load_all(self) -> None:
        for path in sorted(self.directory.rglob("*")):
            if path.is_file() and _wanted(path):
                self.load(path)

    def resources(self) -> list[Resource]:
        latest: dict[tuple[str, str], Resource] = {}
        for path in sorted(self.files):
            for r in self.files[path].resources:
                latest[r.KIND, r.meta.key] = r
        return list(latest.values())

    def errors(self) -> dict[str, list[str]]:
        return {str(p): s.errors for p, s in sorted(self.files.items()) if s.errors}

    def apply(self, paths: list[Path]) -> None:
        """Reload changed paths; signal a change when the mesh's resources changed."""
        changed = False
        for path in paths:
            if _wanted(path) and not path.is_dir():
                changed = self.load(path) or changed
        if changed:
            self.on_change()

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Apply changes as they happen. watchfiles groups bursts (an editor's save) itself."""
        async for changes in watchfiles.awatch(
            self.directory, step=10, debounce=1_000, stop_event=stop
        ):
            self.apply([Path(name) for _, name in changes])
