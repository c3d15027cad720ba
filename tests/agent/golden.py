"""Golden files under tests/golden/agent/; `REFRESH_GOLDEN=1` rewrites them."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent.parent / "golden" / "agent"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("REFRESH_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"missing golden file {path}; run with REFRESH_GOLDEN=1"
    assert actual == path.read_text(), f"{path} differs; run with REFRESH_GOLDEN=1 if intended"
