"""Field checks used in `Annotated[...]` hints. Each returns an error message or None.

They are the rules Envoy or Kubernetes would otherwise enforce later and less helpfully: a
regex Envoy's RE2 cannot compile would be NACKed by every proxy; a header name with upper case
never matches because HTTP/2 lowercases them.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

import re2

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# An HTTP token (RFC 7230). Envoy lowercases header names itself, so case does not matter.
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# The pseudo-headers a route may match on, as Istio allows.
PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
# Kubernetes label keys (`prefix/name`) and values.
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
# Header values may not hold control characters other than tab (Istio's rule; Envoy refuses
# NUL, CR and LF outright).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Envoy refuses regexes whose compiled RE2 program is larger than this (its default
# re2.max_program_size.error_level), so we refuse them too, before any proxy sees them.
ENVOY_MAX_REGEX_PROGRAM_SIZE = 100
# Istio's upper bound for maglev lookup tables.
MAX_MAGLEV_TABLE_SIZE = 5_000_011


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def in_range(lo: float, hi: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        if lo <= value <= hi:
            return None
        return f"must be {_number(lo)}..{_number(hi)}, got {_number(value)}"

    return check


def at_least(lo: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if value >= lo else f"must be at least {_number(lo)}, got {_number(value)}"

    return check


def non_empty(value: str) -> str | None:
    return None if value else "must not be empty"


def line(value: str) -> str | None:
    """Paths, hosts and rewrites Envoy puts into headers: no NUL, CR or LF."""
    if any(c in value for c in "\x00\r\n"):
        return f"must not hold NUL, CR or LF (Envoy refuses them), got {value!r}"
    return None


def dns_label(value: str) -> str | None:
    if len(value) <= 63 and _DNS_LABEL.fullmatch(value):
        return None
    return (
        f"must be a DNS label (lower case letters, digits and '-', starting and ending "
        f"with a letter or digit, at most 63 characters), got {value!r}"
    )


def dns_subdomain(value: str) -> str | None:
    if 0 < len(value) <= 253 and all(dns_label(p) is None for p in value.split(".")):
        return None
    return f"must be a DNS name of lower case labels separated by '.', got {value!r}"


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host(value: str) -> str | None:
    """A service host: short name, `name.ns`, FQDN, or an IP address. No wildcards."""
    if is_ip(value):
        return None
    example = "'reviews' or 'reviews.default.svc.cluster.local'"
    if dns_subdomain(value) is not None:
        return f"must be a service name such as {example}, got {value!r}"
    top = value.rsplit(".", 1)[-1]
    if "." in value and top.isdigit():
        return f"must be an IP address or a name whose last label is not all digits, got {value!r}"
    return None


def host_pattern(value: str) -> str | None:
    """A VirtualService host: like `host`, or a name whose first label starts with `*`.

    `*.example.com`, `*example.com` and `*-api.example.com` match by suffix, as in Istio; `*`
    alone is refused, as Istio refuses it for mesh VirtualServices (it would capture every host).
    """
    if value == "*":
        return "'*' alone is not allowed for mesh VirtualServices; name the hosts or a '*.suffix'"
    if value.startswith("*"):
        first, _, rest = value[1:].partition(".")
        first_ok = first == "" or dns_label(first.removeprefix("-")) is None
        if first_ok and (not rest or host(rest) is None) and not (first == "" and not rest):
            return None
    elif host(value) is None:
        return None
    return (
        f"must be a host such as 'reviews', 'reviews.default.svc.cluster.local' or "
        f"'*.example.com', got {value!r}"
    )


def header_name(value: str) -> str | None:
    if _HEADER_NAME.fullmatch(value):
        return None
    return f"header names must be HTTP tokens (letters, digits and !#$%&'*+-.^_`|~), got {value!r}"


def match_header_name(value: str) -> str | None:
    """A header a route matches on: a token, or one of the pseudo-headers such as `:path`."""
    if value in PSEUDO_HEADERS or _HEADER_NAME.fullmatch(value):
        return None
    pseudo = ", ".join(sorted(PSEUDO_HEADERS))
    return f"header names must be HTTP tokens or one of {pseudo}, got {value!r}"


def label_key(value: str) -> str | None:
    """A Kubernetes label key: `name` or `dns.prefix/name`, the name at most 63 characters."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns_subdomain(prefix)):
        return f"the prefix of label key {value!r} must be a DNS name"
    if len(name) <= 63 and _LABEL_NAME.fullmatch(name):
        return None
    return (
        f"label keys must be at most 63 letters, digits, '-', '_' or '.', starting and ending "
        f"with a letter or digit (optionally after a 'dns.prefix/'), got {value!r}"
    )


def label_value(value: str) -> str | None:
    if value == "" or (len(value) <= 63 and _LABEL_NAME.fullmatch(value)):
        return None
    return (
        f"label values must be empty or at most 63 letters, digits, '-', '_' or '.', starting "
        f"and ending with a letter or digit, got {value!r}"
    )


def labels(value: Mapping[str, str]) -> str | None:
    for key, item in value.items():
        if problem := label_key(key) or label_value(item):
            return problem
    return None


def port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else f"must be a port number 1..65535, got {value}"


def cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"must be an IP address or CIDR such as '10.0.0.0/8', got {value!r}"
    return None


def non_negative_duration(value: timedelta) -> str | None:
    return None if value >= timedelta(0) else "must not be negative"


def positive_duration(value: timedelta) -> str | None:
    return None if value >= timedelta(milliseconds=1) else "must be at least 1ms"


def whole_seconds(value: timedelta) -> str | None:
    if value.microseconds == 0:
        return None
    return f"must be a whole number of seconds (Envoy's precision here), got {value}"


def is_prime(n: int) -> bool:
    """Envoy's test for maglev table sizes."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0:
        return False
    return all(n % f for f in range(3, math.isqrt(n) + 1, 2))


def maglev_table_size(value: int) -> str | None:
    if 1 < value < MAX_MAGLEV_TABLE_SIZE and is_prime(value):
        return None
    return (
        f"must be a prime number below {MAX_MAGLEV_TABLE_SIZE} (Envoy needs a prime; 65537 is its "
        f"default), got {value}"
    )


@lru_cache(maxsize=4096)
def re2_regex(value: str) -> str | None:
    """Envoy compiles regexes with RE2: no lookarounds, no backreferences; never empty."""
    if not value:
        return "must not be empty (Envoy refuses an empty regex)"
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(value, options)
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        return (
            f"not a valid RE2 regex (Envoy's dialect; lookarounds and backreferences are not "
            f"supported): {reason}"
        )
    size = compiled._regexp.ProgramSize()
    if size > ENVOY_MAX_REGEX_PROGRAM_SIZE:
        return (
            f"regex is too complex for Envoy: program size {size}, limit "
            f"{ENVOY_MAX_REGEX_PROGRAM_SIZE}"
        )
    return None


Regex = Annotated[str, re2_regex]
Port = Annotated[int, port]
Percent = Annotated[float, in_range(0, 100)]


# Envoy's header formatter replaces `%COMMAND%` in header values with request data and refuses
# (NACKs) a value with any other `%`. These are the commands istiolite lets through, each
# checked against Envoy 1.40 (tests/discovery/test_envoy_formatter.py); `%%` is a literal `%`.
FORMATTER_COMMANDS = frozenset(
    {
        "BYTES_RECEIVED",
        "BYTES_SENT",
        "CONNECTION_ID",
        "DOWNSTREAM_LOCAL_ADDRESS",
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_LOCAL_PORT",
        "DOWNSTREAM_PEER_CERT",
        "DOWNSTREAM_PEER_DNS_SAN",
        "DOWNSTREAM_PEER_ISSUER",
        "DOWNSTREAM_PEER_SUBJECT",
        "DOWNSTREAM_PEER_URI_SAN",
        "DOWNSTREAM_REMOTE_ADDRESS",
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_REMOTE_PORT",
        "DOWNSTREAM_TLS_CIPHER",
        "DOWNSTREAM_TLS_VERSION",
        "DURATION",
        "HOSTNAME",
        "PROTOCOL",
        "REQUESTED_SERVER_NAME",
        "REQUEST_DURATION",
        "RESPONSE_CODE",
        "RESPONSE_FLAGS",
        "ROUTE_NAME",
        "STREAM_ID",
        "TRACE_ID",
        "UPSTREAM_CLUSTER",
        "UPSTREAM_HOST",
        "UPSTREAM_LOCAL_ADDRESS",
        "UPSTREAM_REMOTE_ADDRESS",
        "UPSTREAM_TRANSPORT_FAILURE_REASON",
    }
)
# Commands that take an argument in parentheses, and what the argument may be. Time formats
# (strftime, with their own `%`) are optional; the others are required.
_TOKEN = r"[A-Za-z0-9!#$&'*+.^_`|~-]+"
_NAME_ARG = re.compile(rf":?{_TOKEN}(\?:?{_TOKEN})?")
_SEGMENT = r"[A-Za-z0-9_./-]+"
_KEY_ARG = re.compile(rf"{_SEGMENT}(:{_SEGMENT})*")
_TIME_ARG = re.compile(r"[^()\x00-\x1f\x7f]*")
FORMATTER_ARGUMENTS: Mapping[str, re.Pattern[str]] = {
    "REQ": _NAME_ARG,
    "RESP": _NAME_ARG,
    "TRAILER": _NAME_ARG,
    "DYNAMIC_METADATA": _KEY_ARG,
    "CLUSTER_METADATA": _KEY_ARG,
    "UPSTREAM_METADATA": _KEY_ARG,
    "FILTER_STATE": re.compile(rf"{_SEGMENT}(:PLAIN|:TYPED)?"),
    "ENVIRONMENT": re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    "START_TIME": _TIME_ARG,
    "DOWNSTREAM_PEER_CERT_V_START": _TIME_ARG,
    "DOWNSTREAM_PEER_CERT_V_END": _TIME_ARG,
}
_OPTIONAL_ARGUMENT = frozenset(
    {"START_TIME", "DOWNSTREAM_PEER_CERT_V_START", "DOWNSTREAM_PEER_CERT_V_END"}
)
_FORMATTER_PART = re.compile(
    r"%%|%(?P<command>[A-Z0-9_]+)(?:\((?P<argument>[^()]*)\))?(?::(?P<length>[0-9]+))?%"
)


def _formatter_command(m: re.Match[str]) -> str | None:
    command, argument, length = m.group("command", "argument", "length")
    pattern = FORMATTER_ARGUMENTS.get(command)
    if pattern is None:
        if command not in FORMATTER_COMMANDS:
            return f"{m.group()!r} is not an Envoy command istiolite knows (such as %HOSTNAME%)"
        if argument is not None or length is not None:
            return f"{command} takes no argument or length, got {m.group()!r}"
        return None
    if argument is None and command not in _OPTIONAL_ARGUMENT:
        return f"{command} needs an argument in parentheses, such as %{command}(x-name)%"
    if argument is not None and not (argument and pattern.fullmatch(argument)):
        return f"the argument of {command} is not valid: {argument!r}"
    if length is not None and command not in ("REQ", "RESP", "TRAILER"):
        return f"only REQ, RESP and TRAILER take a length, got {m.group()!r}"
    return None


def header_value(value: str) -> str | None:
    """A header value for Envoy: `%%` is a literal `%`; `%COMMAND%` is replaced by Envoy."""
    if _CONTROL.search(value):
        return f"header values may not hold control characters, got {value!r}"
    pos = 0
    for m in _FORMATTER_PART.finditer(value):
        if "%" in value[pos : m.start()]:
            break
        if m.group() != "%%" and (problem := _formatter_command(m)):
            return problem
        pos = m.end()
    if "%" in value[pos:]:
        return (
            f"a '%' starts an Envoy variable such as %HOSTNAME% or %REQ(x-name)%; write '%%' for "
            f"a literal '%', got {value!r}"
        )
    return None
