"""docs/api.md mentions every field the models accept and every field they reject."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from istiolite.api.decode import Decoder
from istiolite.api.networking import (
    DestinationRuleSpec,
    SidecarSpec,
    VirtualServiceSpec,
    WorkloadEntrySpec,
)

DOC = (Path(__file__).parent.parent.parent / "docs" / "api.md").read_text()


def _models(root: type) -> set[type]:
    seen: set[type] = set()
    stack: list[Any] = [root]
    while stack:
        hint = stack.pop()
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if hint in seen:
                continue
            seen.add(hint)
            stack.extend(f.hint for f in Decoder._fields(hint))
        else:
            stack.extend(typing.get_args(hint))
    return seen


def test_every_accepted_and_rejected_field_is_documented() -> None:
    missing = set()
    for root in (VirtualServiceSpec, DestinationRuleSpec, WorkloadEntrySpec, SidecarSpec):
        for model in _models(root):
            keys = [f.key for f in Decoder._fields(model)] + list(getattr(model, "UNSUPPORTED", {}))
            missing |= {
                f"{model.__name__}.{k}" for k in keys if f"`{k}`" not in DOC and f".{k}`" not in DOC
            }
    assert not missing, f"document these in docs/api.md: {sorted(missing)}"
