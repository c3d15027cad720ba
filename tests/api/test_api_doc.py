"""docs/api.md mentions every field the models accept and every field they reject."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from istiolite.api.decode import Decoder
from istiolite.api.gateway import GatewaySpec
from istiolite.api.networking import (
    DestinationRuleSpec,
    SidecarSpec,
    VirtualServiceSpec,
    WorkloadEntrySpec,
)
from istiolite.api.serviceentry import ServiceEntrySpec

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
    roots = (
        VirtualServiceSpec,
        DestinationRuleSpec,
        WorkloadEntrySpec,
        SidecarSpec,
        GatewaySpec,
        ServiceEntrySpec,
    )
    for root in roots:
        for model in _models(root):
            keys = [f.key for f in Decoder._fields(model)] + list(getattr(model, "UNSUPPORTED", {}))
            missing |= {
                f"{model.__name__}.{k}" for k in keys if f"`{k}`" not in DOC and f".{k}`" not in DOC
            }
    assert not missing, f"document these in docs/api.md: {sorted(missing)}"


def test_every_value_istiolite_refuses_by_name_is_documented() -> None:
    """Istio's TLS modes, protocols and resolutions istiolite lacks are listed with reasons."""
    missing = set()
    for root in (GatewaySpec, ServiceEntrySpec):
        for model in _models(root):
            for f in Decoder._fields(model):
                for hint in (f.hint, *typing.get_args(f.hint)):
                    reasons, _ = getattr(hint, "_istiolite_unsupported_values", ({}, False))
                    missing |= {v for v in reasons if f"`{v}`" not in DOC}
    assert not missing, f"document these in docs/api.md: {sorted(missing)}"
