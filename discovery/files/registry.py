"""A directory of Kubernetes-style YAML as a source of mesh resources, watched for changes.

Each file stands or falls on its own: when any document in a file is invalid, the file's last
good content stays in force and the errors are reported (log, /debug/configz) until the file is
fixed. A resource defined in two files is taken from the later file (sorted by path), as
`kubectl apply` of both would leave it.

A file is re-read whole on every change, but only documents whose text changed are parsed
again (YAML and validation cost ~0.4 ms a document); the others keep their resource objects,
which is also what lets configuration built from them be reused (it is cached by identity).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from istiolite.api import Resource, parse_yaml

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
# A line that starts a YAML document. YAML forbids one inside any scalar, so the text between
# two of them parses alone exactly as it does within the stream.
_DOCUMENT_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)


def split_documents(text: str) -> list[str] | None:
    """The text of each document; None when the stream must be parsed whole (directives)."""
    if _DIRECTIVE.search(text):
        return None
    starts = [m.start() for m in _DOCUMENT_START.finditer(text)]
    bounds = sorted({0, *starts, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _parse(
    text: str, source: str, known: dict[str, list[Resource]]
) -> tuple[list[tuple[str, list[Resource]]], list[str]]:
    """Each document's text and resources, and the file's errors.

    Documents in `known` (the last good content) are not parsed again. When any document has
    an error, the file is parsed whole, so messages read as for the file (`file.yaml#3`).
    """
    documents = split_documents(text)
    found: list[tuple[str, list[Resource]]] = []
    for doc in documents or ():
        resources = known.get(doc)
        if resources is None:
            parsed = parse_yaml(doc, source=source)
            if any(p.error for p in parsed):
                break
            resources = [p.resource for p in parsed if p.resource is not None]
        found.append((doc, resources))
    else:
        if documents is not None:
            return found, []
    parsed = parse_yaml(text, source=source)
    errors = [str(p.error) for p in parsed if p.error is not None]
    return [(text, [p.resource for p in parsed if p.resource is not None])], errors


@dataclass
class FileState:
    resources: list[Resource] = field(default_factory=list)  # last good content
    errors: list[str] = field(default_factory=list)  # problems with the current content
    documents: dict[str, list[Resource]] = field(default_factory=dict)  # by document text


def _wanted(path: Path) -> bool:
    return path.suffix in SUFFIXES and not path.name.startswith(".")


class FileRegistry:
    def __init__(self, directory: Path, on_change: Callable[[], None]) -> None:
        self.directory = directory
        self.on_change = on_change
        self.files: dict[Path, FileState] = {}
        self._merged: list[Resource] | None = None  # resources(), until a file changes

    def load(self, path: Path) -> bool:
        """(Re)read one file; return whether the mesh's resources changed."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            self._merged = None
            return self.files.pop(path, None) is not None
        except OSError as e:
            self._state(path).errors = [f"{path}: cannot read: {e.strerror or e}"]
            return False
        state = self._state(path)
        documents, errors = _parse(text, str(path), state.documents)
        state.errors = errors
        if errors:
            for message in errors:
                log.warning("keeping the last good content of %s: %s", path, message)
            return False
        # Keep the objects of resources that did not change: configuration built from them is
        # cached by identity, so an edit to one resource rebuilds only what depends on it.
        earlier = {(r.KIND, r.meta.key): r for r in state.resources}
        documents = [
            (doc, found if doc in state.documents else [_kept(earlier, r) for r in found])
            for doc, found in documents
        ]
        resources = [r for _, found in documents for r in found]
        changed = resources != state.resources
        state.resources, state.documents = resources, dict(documents)
        if changed:
            self._merged = None
        return changed

    def _state(self, path: Path) -> FileState:
        return self.files.setdefault(path, FileState())

    def load_all(self) -> None:
        for path in sorted(self.directory.rglob("*")):
            if path.is_file() and _wanted(path):
                self.load(path)

    def resources(self) -> list[Resource]:
        if self._merged is None:
            latest: dict[tuple[str, str], Resource] = {}
            for path in sorted(self.files):
                for r in self.files[path].resources:
                    latest[r.KIND, r.meta.key] = r
            self._merged = list(latest.values())
        return list(self._merged)

    def errors(self) -> dict[str, list[str]]:
        return {str(p): s.errors for p, s in sorted(self.files.items()) if s.errors}

    def apply(self, paths: list[Path]) -> None:
        """Reload changed paths; signal a change when the mesh's resources changed."""
        started = time.perf_counter()
        changed = False
        for path in paths:
            if _wanted(path) and not path.is_dir():
                changed = self.load(path) or changed
        log.debug(
            "reloaded %d path(s) in %.1f ms, changed: %s",
            len(paths),
            1000 * (time.perf_counter() - started),
            changed,
        )
        if changed:
            self.on_change()

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Apply changes as they happen.

        watchfiles yields once no new event came for `step` ms: a short step because an
        editor's save that spans two yields costs nothing here, the push is debounced anyway.
        """
        async for changes in watchfiles.awatch(
            self.directory, step=2, debounce=1_000, stop_event=stop
        ):
            self.apply([Path(name) for _, name in changes])


def _kept(earlier: dict[tuple[str, str], Resource], resource: Resource) -> Resource:
    old = earlier.get((resource.KIND, resource.meta.key))
    return old if old == resource else resource
