"""The demo's command line, where no root is needed to check it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from istiolite.cli import main


@pytest.mark.parametrize("command", [["up"], ["down"], ["status"], ["apply", "-f", __file__]])
def test_without_root_the_demo_says_it_needs_root(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["demo", *command])
    assert result.exit_code == 1
    assert "needs root" in result.output and "sudo" in result.output
