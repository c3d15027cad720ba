"""Validation errors that say what was wrong and exactly where.

Every problem carries the path of the offending field (`spec.http[0].route[1].weight`), so a
user can find it in their YAML without guessing. A resource can have several problems; all of
them are reported at once rather than one per edit-and-retry cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PathPart = str | int
Path = tuple[PathPart, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class MapKey(str):
    """A path part that is a key of a user map (labels, headers), not a field name."""

    __slots__ = ()


def format_path(path: Path) -> str:
    """`("spec", "http", 0, "route")` -> `spec.http[0].route`; odd map keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, MapKey) and not _PLAIN_KEY.fullmatch(part):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out or "<document>"


@dataclass(frozen=True, slots=True)
class FieldError:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}"


class ValidationError(Exception):
    """A resource (or document) failed validation; `errors` holds every problem found."""

    def __init__(self, resource: str, errors: Iterable[FieldError]) -> None:
        self.resource = resource
        self.errors = tuple(errors)
        super().__init__("\n".join(f"{resource}: {e}" for e in self.errors))
