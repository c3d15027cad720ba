"""Field checks used in `Annotated[...]` hints. Each returns an error message or None.

They are the rules Envoy or Kubernetes would otherwise enforce later and less helpfully: a
regex Envoy's RE2 cannot compile would be NACKed by every proxy; a header name with upper case
never matches because HTTP/2 lowercases them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

import re2

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
# Envoy refuses regexes whose compiled RE2 program is larger than this (its default
# re2.max_program_size.error_level), so we refuse them too, before any proxy sees them.
ENVOY_MAX_REGEX_PROGRAM_SIZE = 100


def in_range(lo: float, hi: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if lo <= value <= hi else f"must be {lo:g}..{hi:g}, got {value:g}"

    return check


def at_least(lo: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if value >= lo else f"must be at least {lo:g}, got {value:g}"

    return check


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


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host(value: str) -> str | None:
    """A service host: short name, `name.ns`, FQDN, or an IP address. No wildcards."""
    if _is_ip(value) or dns_subdomain(value) is None:
        return None
    example = "'reviews' or 'reviews.default.svc.cluster.local'"
    return f"must be a service name such as {example}, got {value!r}"


def host_pattern(value: str) -> str | None:
    """A VirtualService host: like `host`, or `*`, or a `*.` wildcard prefix."""
    if value == "*" or (value.startswith("*.") and dns_subdomain(value[2:]) is None):
        return None
    if host(value) is None:
        return None
    return (
        f"must be a host such as 'reviews', 'reviews.default.svc.cluster.local' or "
        f"'*.example.com', got {value!r}"
    )


def header_name(value: str) -> str | None:
    if _HEADER_NAME.fullmatch(value):
        return None
    return f"header names must be lower case HTTP tokens, got {value!r}"


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


@lru_cache(maxsize=4096)
def re2_regex(value: str) -> str | None:
    """Envoy compiles regexes with RE2: no lookarounds, no backreferences."""
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
