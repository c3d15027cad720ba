"""The installer's values: what `istiolite install --set KEY=VALUE` may change, and nothing else.

The keys are Istio's where Istio has one (`hub`, `tag`, `logLevel`), so a user's habits carry
over. Each is one field of `Values` with its parser and help text; `--set` only fills it in, and
docs/install.md lists the same table. An unknown key or a bad value is an error naming the key
and what is accepted: a typo that silently installed the defaults would be found much later.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from istiolite import __version__

LOG_LEVELS = ("debug", "info", "warning", "error")  # pilot-discovery's --log-level choices
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# A Kubernetes resource quantity: "500m", "1", "0.5", "256Mi", "1G", "1e3".
_QUANTITY = re.compile(r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]+)?$")


class BadValue(ValueError):
    """A `--set` that names an unknown key or gives a value the key does not accept."""


def _text(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _replicas(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("must be a whole number of at least 1")
    return int(raw)


def _boolean(raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise ValueError("must be true or false")
    return raw.lower() == "true"


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return parse


def _quantity(*, optional: bool) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if optional and raw == "":
            return raw
        if not _QUANTITY.match(raw):
            hint = ' (or "" for no limit)' if optional else ""
            raise ValueError(f'must be a Kubernetes quantity such as "500m" or "256Mi"{hint}')
        return raw

    return parse


def _value(key: str, parse: Callable[[str], Any], doc: str, default: Any) -> Any:
    return field(default=default, metadata={"key": key, "parse": parse, "doc": doc})


@dataclass(frozen=True, slots=True)
class Values:
    hub: str = _value("hub", _text, "registry of both images", "istiolite")
    tag: str = _value("tag", _text, "tag of both images", __version__)
    pilot_image: str = _value(
        "pilotImage", _text, "pilot-discovery's image; default HUB/pilot:TAG", ""
    )
    proxy_image: str = _value(
        "proxyImage", _text, "the injected sidecar's image; default HUB/proxy:TAG", ""
    )
    image_pull_policy: str = _value(
        "imagePullPolicy",
        _choice(PULL_POLICIES),
        "pull policy of istiod and of the sidecars it injects",
        "IfNotPresent",
    )
    replicas: int = _value("replicas", _replicas, "istiod replicas", 1)
    log_level: str = _value("logLevel", _choice(LOG_LEVELS), "pilot-discovery's log level", "info")
    native_sidecar: bool = _value(
        "nativeSidecar", _boolean, "inject the proxy as a native sidecar (Kubernetes 1.29+)", False
    )
    cpu_request: str = _value("cpuRequest", _quantity(optional=False), "istiod CPU request", "100m")
    memory_request: str = _value(
        "memoryRequest", _quantity(optional=False), "istiod memory request", "256Mi"
    )
    # No CPU limit by default: throttling would stretch a push to every proxy, not save anything.
    cpu_limit: str = _value("cpuLimit", _quantity(optional=True), 'istiod CPU limit; "" none', "")
    memory_limit: str = _value(
        "memoryLimit", _quantity(optional=True), 'istiod memory limit; "" none', "1Gi"
    )
    ingress_gateway: bool = _value(
        "gateways.ingress.enabled",
        _boolean,
        "run the ingress gateway istio-system/istio-ingressgateway",
        True,
    )

    @property
    def pilot(self) -> str:
        return self.pilot_image or f"{self.hub}/pilot:{self.tag}"

    @property
    def proxy(self) -> str:
        return self.proxy_image or f"{self.hub}/proxy:{self.tag}"


def accepted() -> list[tuple[str, str, str]]:
    """Every accepted key with its help text and default as `--set` spells it, for help and docs."""
    return [
        (f.metadata["key"], f.metadata["doc"], _spelled(f.default))
        for f in dataclasses.fields(Values)
    ]


def _spelled(default: Any) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    return str(default) if default != "" else '""'


def from_sets(sets: Iterable[str], base: Values | None = None) -> Values:
    """`base` (the defaults) with each `KEY=VALUE` applied in order; later ones win."""
    by_key = {f.metadata["key"]: f for f in dataclasses.fields(Values)}
    changes: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise BadValue(f"--set {item}: expected KEY=VALUE")
        if key not in by_key:
            raise BadValue(f"--set {item}: unknown key {key!r}; accepted keys: {', '.join(by_key)}")
        f = by_key[key]
        try:
            changes[f.name] = f.metadata["parse"](raw)
        except ValueError as e:
            raise BadValue(f"--set {item}: {key} {e}") from None
    return dataclasses.replace(base or Values(), **changes)
