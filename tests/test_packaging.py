"""The distribution ships every package, and the console scripts start."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MAPPED = {
    "istiolite": "istiolite",
    "agent": "istiolite.agent",
    "discovery": "istiolite.discovery",
    "install": "istiolite.install",
}


def _package_dirs() -> set[str]:
    found = set()
    for top, name in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert _package_dirs() - listed == set(), "add these to [tool.setuptools] packages"


@pytest.mark.parametrize("script", ["istiolite", "pilot-discovery", "pilot-agent"])
def test_console_script_answers_help(script: str) -> None:
    exe = Path(sys.executable).parent / script
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
