"""pilot-discovery's command line sets every Setting, from a flag or its environment variable."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from istiolite.discovery import server
from istiolite.discovery.cli import discovery
from istiolite.discovery.settings import Settings

ENV_ONLY = {"debounce_after", "debounce_max"}  # Istio's PILOT_DEBOUNCE_* have no flags either


def test_every_setting_has_a_flag() -> None:
    flags = {p.name for p in discovery.params} - {"log_level"}
    assert flags == {f.name for f in dataclasses.fields(Settings)} - ENV_ONLY


@pytest.mark.parametrize(
    ("args", "env", "root"),
    [
        ([], {}, "istio-system"),
        (["--root-namespace", "mesh-config"], {}, "mesh-config"),
        ([], {"PILOT_ROOT_NAMESPACE": "from-env"}, "from-env"),
    ],
)
def test_the_root_namespace_reaches_the_server(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], root: str
) -> None:
    started: list[Settings] = []

    async def serve(settings: Settings) -> None:
        started.append(settings)

    monkeypatch.setattr(server, "serve", serve)
    result = CliRunner().invoke(discovery, args, env=env)
    assert result.exit_code == 0, result.output
    assert [s.root_namespace for s in started] == [root]
