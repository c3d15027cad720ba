"""Golden files: realistic manifests through `kube-inject`, compared with the expected YAML.

Inputs are tests/golden/inject/<case>.in.yaml; expected outputs <case>.out.yaml. After an
intended change to the template, regenerate with `REFRESH_GOLDEN=1 pytest tests/inject` and
read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from istiolite.discovery.inject import inject_manifest
from tests.inject.support import VALUES

GOLDEN = Path(__file__).parent.parent / "golden" / "inject"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))


def test_there_are_enough_golden_workloads() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES)
def test_injected_manifest_matches_golden(case: str) -> None:
    got = inject_manifest((GOLDEN / f"{case}.in.yaml").read_text(), VALUES)
    expected = GOLDEN / f"{case}.out.yaml"
    if os.environ.get("REFRESH_GOLDEN"):
        expected.write_text(got)
    assert got == expected.read_text()


@pytest.mark.parametrize("case", CASES)
def test_injecting_golden_output_again_changes_nothing(case: str) -> None:
    injected = (GOLDEN / f"{case}.out.yaml").read_text()
    assert inject_manifest(injected, VALUES) == injected
