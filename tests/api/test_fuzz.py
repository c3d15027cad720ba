"""Generated documents: whatever comes in, only the project's ValidationError comes out."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from istiolite.api import ValidationError, parse_resource, parse_yaml
from istiolite.api.decode import Decoder
from istiolite.api.networking import DestinationRuleSpec, SidecarSpec, VirtualServiceSpec

TESTDATA = Path(__file__).parent / "testdata"
BASES = [
    d
    for name in ("bookinfo.yaml", "sidecar.yaml")
    for d in yaml.safe_load_all((TESTDATA / name).read_text())
    if d["kind"] in ("VirtualService", "DestinationRule", "Sidecar", "Service")
]


def _field_names() -> list[str]:
    names: set[str] = set()
    for cls in (VirtualServiceSpec, DestinationRuleSpec, SidecarSpec):
        stack: list[Any] = [cls]
        seen: set[Any] = set()
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            for f in Decoder._fields(c):
                names.add(f.key)
                for arg in _leaf_types(f.hint):
                    if hasattr(arg, "__dataclass_fields__"):
                        stack.append(arg)
    return sorted(names)


def _leaf_types(hint: Any) -> list[Any]:
    args = getattr(hint, "__args__", None) or getattr(hint, "__origin__", None)
    if args is None:
        return [hint]
    if not isinstance(args, tuple):
        args = (args,)
    out = [hint]
    for a in args:
        out.extend(_leaf_types(a))
    return out


KEYS = st.sampled_from(_field_names()) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["1s", "100ms", "0s", "-1s", "v1", "reviews", "(?=x)", "[", "mesh", "99999"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A valid resource with one to three subtrees replaced, deleted or given extra keys."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add-key"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(KEYS)] = draw(VALUES)
    return doc


def _parse(doc: Any) -> None:
    try:
        parse_resource(doc)
    except ValidationError as e:
        assert e.errors, "a ValidationError must carry at least one problem"
        for problem in e.errors:
            assert problem.message


@settings(max_examples=7_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_documents())
def test_mutated_resources_fail_only_with_validation_errors(doc: Any) -> None:
    _parse(doc)


@settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["VirtualService", "DestinationRule", "WorkloadEntry", "Sidecar"]), VALUES)
def test_arbitrary_specs_fail_only_with_validation_errors(kind: str, spec: Any) -> None:
    _parse(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": kind,
            "metadata": {"name": "x"},
            "spec": spec,
        }
    )


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=200) | VALUES.map(yaml.safe_dump))
def test_arbitrary_text_never_raises(text: str) -> None:
    for parsed in parse_yaml(text):
        assert (parsed.resource is None) != (parsed.error is None)
