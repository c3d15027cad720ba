"""Istio's networking.istio.io/v1 ServiceEntry: hosts the mesh does not find as Services
(an external API, a database on a VM), declared so that sidecars route to them like services.

Its hosts get clusters and virtual hosts as Services' do, VirtualServices and DestinationRules
apply to them, and a Sidecar with `REGISTRY_ONLY` lets them through. The rules are Istio's
(pkg/config/validation: ValidateServiceEntry); docs/api.md lists where istiolite differs.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator, Mapping
from typing import Annotated, ClassVar

from istiolite.api import checks
from istiolite.api.checks import Port
from istiolite.api.decode import model, unsupported_values
from istiolite.api.errors import MapKey, Path
from istiolite.api.gateway import PortProtocol
from istiolite.api.networking import PortName, WorkloadEntrySpec, export_to_problems

Problems = Iterator[tuple[Path, str]]


class Location(enum.StrEnum):
    # Istio's default (the zero of its enum).
    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


@unsupported_values(
    {"DYNAMIC_DNS": "resolving wildcard hosts per request (Envoy's dynamic forward proxy)"}
)
class Resolution(enum.StrEnum):
    # Istio's default: connections go to the address the caller asked for.
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"


def entry_host(value: str) -> str | None:
    """A ServiceEntry host: a DNS name, optionally starting with a `*` label (`*.example.com`,
    as a VirtualService host may); not `*` alone, not an IP address (Istio's rules). A name
    without a dot is taken literally, not expanded."""
    if value == "*":
        return "'*' alone is not allowed: the entry would capture every host; name the hosts"
    if checks.is_ip(value):
        return f"must be a DNS name, not an IP address (put addresses in addresses), got {value!r}"
    return checks.host_pattern(value)


def address_or_cidr(value: str) -> str | None:
    """An IP address or a CIDR (Istio's ValidateIPSubnet)."""
    if "/" in value:
        return checks.cidr(value)
    return None if checks.is_ip(value) else f"must be an IP address or a CIDR, got {value!r}"


@model
class ServiceEntryPort:
    number: Port
    name: PortName
    # None: Istio sniffs the protocol; istiolite proxies such a port as TCP (as it does a
    # Service port without a protocol name).
    protocol: PortProtocol | None = None
    # 0, as in Istio, is unset: the endpoints listen on `number`.
    target_port: Annotated[int, checks.in_range(0, 65535)] | None = None

    @property
    def effective_protocol(self) -> PortProtocol:
        return self.protocol or PortProtocol.TCP


@model
class ServiceEntrySpec:
    hosts: tuple[Annotated[str, entry_host], ...]
    addresses: tuple[Annotated[str, address_or_cidr], ...] = ()
    ports: tuple[ServiceEntryPort, ...] = ()
    location: Location = Location.MESH_EXTERNAL
    resolution: Resolution = Resolution.NONE
    endpoints: tuple[WorkloadEntrySpec, ...] = ()
    export_to: tuple[str, ...] = ()

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "workloadSelector": "selecting Pods or WorkloadEntries as endpoints; list the endpoints "
        "here, or use a Service",
        "subjectAltNames": "checking the servers' mTLS identities (istiolite has no mesh mTLS)",
    }

    def check(self) -> Problems:
        if not self.hosts:
            yield ("hosts",), "must list at least one host"
        yield from self._ports()
        yield from self._addresses()
        yield from self._endpoints()
        if self.resolution is not Resolution.NONE and len(self.hosts) > 1:
            for i, port in enumerate(self.ports):
                protocol = port.effective_protocol
                if not protocol.is_http and not protocol.is_tls:
                    yield (
                        ("ports", i, "protocol"),
                        f"with several hosts and resolution {self.resolution}, a {protocol} "
                        f"port cannot tell the hosts apart: use HTTP or TLS (or resolution NONE)",
                    )
                    break

    def check_in(self, namespace: str) -> Problems:
        yield from export_to_problems(self.export_to, namespace, allow_none=True)

    def _ports(self) -> Problems:
        names: dict[str, int] = {}
        numbers: dict[int, int] = {}
        for i, port in enumerate(self.ports):
            if port.name in names:
                yield ("ports", i, "name"), f"ports[{names[port.name]}] is named {port.name!r} too"
            if port.number in numbers:
                yield (
                    ("ports", i, "number"),
                    f"ports[{numbers[port.number]}] has number {port.number} too",
                )
            names.setdefault(port.name, i)
            numbers.setdefault(port.number, i)

    def _addresses(self) -> Problems:
        ranges = (Resolution.NONE, Resolution.STATIC)
        for i, address in enumerate(self.addresses):
            if "/" in address and self.resolution not in ranges:
                yield (
                    ("addresses", i),
                    f"a CIDR is allowed with resolution NONE or STATIC only, not {self.resolution}",
                )

    def _endpoints(self) -> Problems:
        resolution = self.resolution
        if resolution is Resolution.NONE and self.endpoints:
            yield (
                ("endpoints",),
                "resolution NONE sends connections where the caller sent them: it takes no "
                "endpoints (use STATIC or DNS)",
            )
            return
        if resolution is Resolution.DNS_ROUND_ROBIN and len(self.endpoints) > 1:
            yield ("endpoints",), "resolution DNS_ROUND_ROBIN takes at most one endpoint"
        if resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN) and not self.endpoints:
            for i, host in enumerate(self.hosts):
                if host.startswith("*"):
                    yield (
                        ("hosts", i),
                        f"resolution {resolution} without endpoints resolves the hosts "
                        f"themselves: {host!r} is a wildcard; list endpoints or use NONE",
                    )
        names = {p.name for p in self.ports}
        for i, endpoint in enumerate(self.endpoints):
            if resolution is Resolution.STATIC and not checks.is_ip(endpoint.address):
                yield (
                    ("endpoints", i, "address"),
                    f"resolution STATIC needs IP addresses, got {endpoint.address!r} (use DNS "
                    f"for host names)",
                )
            for name in endpoint.ports:
                if name not in names:
                    defined = ", ".join(sorted(names)) or "none"
                    yield (
                        ("endpoints", i, "ports", MapKey(name)),
                        f"the entry defines no port named {name!r} (it has: {defined})",
                    )

    def port(self, number: int) -> ServiceEntryPort | None:
        return next((p for p in self.ports if p.number == number), None)

    @property
    def cidrs(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Every address as a network (a single address is a /32 or /128)."""
        return tuple(ipaddress.ip_network(a, strict=False) for a in self.addresses)
