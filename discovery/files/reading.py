"""One file of the config directory read and parsed: what it holds now, or why it cannot be read.

This is the work done off the event loop (a 10 MB file takes seconds to parse), so it only
computes: the registry applies the outcome on the loop. Nothing here raises for a bad file;
every problem is an outcome.

Only documents whose text changed are parsed again (YAML and validation cost ~0.4 ms a
document); the others keep their resource objects, which is also what lets configuration built
from them be reused (it is cached by identity). A file whose bytes did not change at all (a
`touch`, a `chmod`, an editor's save of the same text) is not parsed again.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from istiolite.api import Resource, parse_yaml
from istiolite.sources import SourceError, decode, read_bytes

# A line that starts a YAML document. YAML forbids one inside any scalar, so the text between
# two of them parses alone exactly as it does within the stream.
_DOCUMENT_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)

Documents = list[tuple[str, list[Resource]]]  # each document's text and its resources


@dataclass(frozen=True, slots=True)
class Gone:
    """Nothing is at the path any more."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Something is there but cannot be read as configuration, and why."""

    message: str


@dataclass(frozen=True, slots=True)
class Busy:
    """Written to while it was read: the write's own event has it read again."""


@dataclass(frozen=True, slots=True)
class Same:
    """The very bytes read last time."""


@dataclass(frozen=True, slots=True)
class Content:
    """New bytes: their documents when all are valid, else the errors."""

    digest: bytes
    documents: Documents
    errors: list[str]


Outcome = Gone | Unreadable | Busy | Same | Content


def digest_of(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


EMPTY = digest_of(b"")


def read_file(path: Path, *, digest: bytes | None, known: Mapping[str, list[Resource]]) -> Outcome:
    """What is at `path` now. `digest`: of the bytes read last; `known`: the last good documents."""
    try:
        data = read_bytes(path)
    except SourceError as e:
        if e.changing:
            return Busy()
        return Gone() if e.missing else Unreadable(e.cause)
    new = digest_of(data)
    if new == digest:
        return Same()
    try:
        text = decode(data, path)
    except SourceError as e:
        return Content(new, [], [e.cause])
    documents, errors = parse_text(text, str(path), known)
    return Content(new, documents, errors)


def split_documents(text: str) -> list[str] | None:
    """The text of each document; None when the stream must be parsed whole (directives)."""
    if _DIRECTIVE.search(text):
        return None
    starts = [m.start() for m in _DOCUMENT_START.finditer(text)]
    bounds = sorted({0, *starts, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def parse_text(
    text: str, source: str, known: Mapping[str, list[Resource]]
) -> tuple[Documents, list[str]]:
    """Each document's text and resources, and the file's errors.

    Documents in `known` (the last good content) are not parsed again. When any document has
    an error, the file is parsed whole, so messages read as for the file (`file.yaml#3`, line
    numbers from the top of the file).
    """
    documents = split_documents(text)
    found: Documents = []
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
