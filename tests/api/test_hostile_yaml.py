"""YAML that cannot be read as data is one error naming its line, never another exception.

Values that do not fit their explicit tag made PyYAML raise ValueError, AttributeError or
KeyError; an alias that contains itself, an alias bomb or deep nesting went through, to exhaust
whatever walked the data next (kube-inject's copy, the dumper).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from istiolite.api import parse_yaml
from istiolite.discovery.inject import InjectionError, inject_manifest
from tests.hostile import HOSTILE
from tests.inject.support import VALUES

TEXT = {
    "float-tag.yaml",
    "timestamp-tag.yaml",
    "day-tag.yaml",
    "bool-tag.yaml",
    "int-tag.yaml",
    "digits.yaml",
    "binary-tag.yaml",
    "self-alias.yaml",
    "laughs.yaml",
    "deep-flow.yaml",
    "deep-block.yaml",
}


def _text(name: str, directory: Path) -> str:
    path = directory / name
    HOSTILE[name].make(path)
    return path.read_text()


@pytest.mark.parametrize("name", sorted(TEXT))
def test_unreadable_yaml_is_one_error_with_its_place(name: str, tmp_path: Path) -> None:
    [parsed] = parse_yaml(_text(name, tmp_path), source=name)
    assert parsed.error is not None
    [error] = parsed.error.errors
    assert error.message.startswith("malformed YAML at line "), error.message
    assert HOSTILE[name].says in error.message


@pytest.mark.parametrize("name", sorted(TEXT))
def test_kube_inject_refuses_unreadable_yaml_with_its_line(name: str, tmp_path: Path) -> None:
    with pytest.raises(InjectionError) as caught:
        inject_manifest(_text(name, tmp_path), VALUES)
    assert caught.value.path.startswith("line "), caught.value
    assert HOSTILE[name].says in caught.value.message


def test_an_alias_bomb_in_a_pod_is_refused_before_it_is_copied() -> None:
    aliases = "\n".join(f"    x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10))
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
        '    x0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
        f"{aliases}\n"
        "spec:\n  containers:\n  - name: app\n    image: app\n    args: *a9\n"
    )
    with pytest.raises(InjectionError, match="billion laughs"):
        inject_manifest(text, VALUES)


def test_shared_blocks_and_merge_keys_still_read() -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: reviews}\n"
        "spec:\n  host: reviews\n  subsets:\n"
        "  - name: v1\n    labels: &labels {app: reviews, version: v1}\n"
        "  - name: v1-copy\n    labels: {<<: *labels}\n"
    )
    [parsed] = parse_yaml(text)
    assert parsed.error is None, parsed.error
