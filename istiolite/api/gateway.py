"""Istio's networking.istio.io/v1 Gateway: which ports a gateway's Envoy listens on, for which
hosts, and how it terminates TLS.

A Gateway selects gateway workloads (by `selector`) and gives them servers; VirtualServices
bound to it (`gateways: [name]`) route what the servers receive. The rules are Istio's
(pkg/config/validation: ValidateGateway); where istiolite decides otherwise, docs/api.md says
why. Certificates come from Kubernetes Secrets named by `credentialName`, served to the
gateway's Envoy over SDS by pilot-discovery; the gateway itself reads no Secret.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Annotated, ClassVar

from istiolite.api import checks
from istiolite.api.checks import Port
from istiolite.api.decode import FrozenDict, model, unsupported_values
from istiolite.api.errors import Path
from istiolite.api.networking import WorkloadSelectorLabels

Problems = Iterator[tuple[Path, str]]

_ISTIO_PROTOCOLS_AS_TCP = "istiolite has no protocol-specific filters for it; use TCP"


@unsupported_values(
    {
        "GRPC-WEB": "gRPC-Web as a protocol of its own; use HTTP (Envoy's HTTP/1.1 and "
        "HTTP/2 carry it)",
        "HTTP_PROXY": "forward proxies",
        "MONGO": _ISTIO_PROTOCOLS_AS_TCP,
        "MYSQL": _ISTIO_PROTOCOLS_AS_TCP,
        "REDIS": _ISTIO_PROTOCOLS_AS_TCP,
        "UDP": "Envoy proxies no UDP for the mesh",
    },
    any_case=True,
)
class PortProtocol(enum.StrEnum):
    """What a gateway server or a ServiceEntry port carries. Read in any case, as Istio does."""

    HTTP = "HTTP"
    HTTPS = "HTTPS"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    TLS = "TLS"

    @classmethod
    def _missing_(cls, value: object) -> PortProtocol | None:
        if isinstance(value, str):
            return cls.__members__.get(value.upper())
        return None

    @property
    def is_http(self) -> bool:
        """Plaintext HTTP of some version (Istio's IsHTTP)."""
        return self in (PortProtocol.HTTP, PortProtocol.HTTP2, PortProtocol.GRPC)

    @property
    def is_tls(self) -> bool:
        """TLS on the wire, terminated or passed through (Istio's IsTLS)."""
        return self in (PortProtocol.HTTPS, PortProtocol.TLS)


@unsupported_values(
    {
        "AUTO_PASSTHROUGH": "SNI-routed passthrough to mesh services (multi-network east-west "
        "gateways)",
        "ISTIO_MUTUAL": "istiolite has no mesh mTLS; use SIMPLE or MUTUAL with credentialName",
        "OPTIONAL_MUTUAL": "optional client certificates; use MUTUAL or SIMPLE",
    }
)
class ServerTLSMode(enum.StrEnum):
    # Istio's default (the zero of its enum), as a `tls:` without `mode` means.
    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"


_FILE_CERTIFICATES = (
    "certificates from files in the gateway's pod; name a Secret with credentialName "
    "(served over SDS, so a new certificate needs no restart)"
)


@model
class ServerTLSSettings:
    https_redirect: bool = False
    mode: ServerTLSMode = ServerTLSMode.PASSTHROUGH
    # A Secret in the gateway workload's namespace (Istio's rule): `tls.crt`, `tls.key` and,
    # for MUTUAL, `ca.crt` (or a Secret `<credentialName>-cacert`).
    credential_name: Annotated[str, checks.dns_subdomain] | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "serverCertificate": _FILE_CERTIFICATES,
        "privateKey": _FILE_CERTIFICATES,
        "caCertificates": _FILE_CERTIFICATES + "; for MUTUAL put ca.crt in that Secret",
        "caCrl": "certificate revocation lists",
        "credentialNames": "several certificates per server; use one credentialName",
        "tlsCertificates": "several certificates per server; use one credentialName",
        "caCertCredentialName": "a CA Secret of another name; put ca.crt in the credentialName "
        "Secret, or name it <credentialName>-cacert",
        "subjectAltNames": "checking client certificates' names",
        "verifyCertificateSpki": "pinning client certificates",
        "verifyCertificateHash": "pinning client certificates",
        "minProtocolVersion": "TLS version limits (Envoy's defaults apply: TLS 1.2 to 1.3)",
        "maxProtocolVersion": "TLS version limits (Envoy's defaults apply: TLS 1.2 to 1.3)",
        "cipherSuites": "cipher suite lists (Envoy's defaults apply)",
        "insecureSkipVerify": "skipping the verification of client certificates",
    }

    def check(self) -> Problems:
        terminates = self.mode in (ServerTLSMode.SIMPLE, ServerTLSMode.MUTUAL)
        if terminates and self.credential_name is None:
            yield (
                ("credentialName",),
                f"{self.mode} TLS needs credentialName: a kubernetes.io/tls Secret in the "
                f"gateway's namespace",
            )
        if self.mode is ServerTLSMode.PASSTHROUGH and self.credential_name is not None:
            yield (
                ("credentialName",),
                "PASSTHROUGH (the default mode) uses no certificate: set mode SIMPLE or MUTUAL "
                "to terminate TLS with it",
            )


def _no_target_port(value: int) -> str | None:
    if value == 0:  # unset, as Istio reads 0
        return None
    return "has no effect on gateways (Istio refuses it too); the server listens on number"


@model
class ServerPort:
    number: Port
    protocol: PortProtocol
    name: Annotated[str, checks.non_empty]
    # Deprecated by Istio and refused unless 0 (unset).
    target_port: Annotated[int, _no_target_port] | None = None


def gateway_host(value: str) -> str | None:
    """A server's host: `[namespace/]dnsName` (Istio's ValidateNamespaceSlashWildcardHostname).

    The namespace says which namespaces' VirtualServices may bind to the host: a name, `.`
    (the Gateway's own) or `*` (any; also what a host without `namespace/` means). The name
    is `*`, `*.suffix`, a full host name (with a dot) or an IP address.
    """
    namespace, slash, name = value.partition("/")
    if not slash:
        namespace, name = "*", value
    elif not namespace or not name:
        return f"neither the namespace nor the host may be empty, got {value!r}"
    if namespace not in ("*", ".") and checks.dns_label(namespace):
        return (
            f"the namespace must be '*', '.' or a namespace name (no '~' on gateways), "
            f"got {namespace!r} in {value!r}"
        )
    if name == "*" or checks.is_ip(name):
        return None
    if name.startswith("*") and not name.startswith("*."):
        return f"partial wildcards such as {name!r} are not allowed; write '*.suffix' or '*'"
    if "." not in name:
        return (
            f"short names are not allowed: write the full host name such as "
            f"'{name}.example.com' or '{name}.<namespace>.svc.cluster.local', got {value!r}"
        )
    # The wildcard label stands for a name: what follows must be a domain of its own.
    if checks.host("x" + name[1:] if name.startswith("*") else name) is None:
        return None
    return (
        f"must be '*', '*.suffix', a full host name such as 'bookinfo.example.com' or an IP "
        f"address, optionally after 'namespace/', got {value!r}"
    )


def split_gateway_host(value: str, namespace: str) -> tuple[str, str]:
    """(namespace, dnsName) of a checked server host: `.` is the Gateway's `namespace`, and a
    host without `namespace/` is `*/host`."""
    if "/" not in value:
        return "*", value
    ns, _, name = value.partition("/")
    return (namespace if ns == "." else ns), name


@model
class Server:
    port: ServerPort
    hosts: tuple[Annotated[str, gateway_host], ...]
    tls: ServerTLSSettings | None = None
    # Kept for readability (Istio uses it for stats names).
    name: str | None = None

    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "bind": "binding a server to one address; it listens on every address of the gateway",
        "defaultEndpoint": "default endpoints (a Sidecar's ingress setting)",
    }

    def check(self) -> Problems:
        if not self.hosts:
            yield ("hosts",), "must list at least one host ('*' for any)"
        protocol, tls = self.port.protocol, self.tls
        if protocol.is_tls and tls is None:
            yield ("tls",), f"{protocol} servers need tls settings (mode and credentialName)"
        if tls is None:
            return
        if protocol is PortProtocol.TCP:
            yield ("tls",), "a TCP server cannot have tls settings; use protocol TLS"
        elif protocol.is_http and tls.mode is not ServerTLSMode.PASSTHROUGH:
            yield (
                ("tls", "mode"),
                f"a plaintext {protocol} server cannot terminate TLS: use protocol HTTPS, or "
                f"httpsRedirect alone",
            )
        if tls.https_redirect and not protocol.is_http:
            yield (
                ("tls", "httpsRedirect"),
                f"redirects plaintext HTTP to HTTPS: only for HTTP servers, not {protocol}",
            )


@model
class GatewaySpec:
    servers: tuple[Server, ...] = ()
    # Gateway workloads whose labels include all of these, in any namespace (Istio's rule).
    selector: WorkloadSelectorLabels = FrozenDict()

    def check(self) -> Problems:
        if not self.servers:
            yield ("servers",), "must have at least one server"
        names: dict[str, int] = {}
        protocols: dict[int, tuple[PortProtocol, int]] = {}
        for i, server in enumerate(self.servers):
            port = server.port
            if port.name in names:
                yield (
                    ("servers", i, "port", "name"),
                    f"port names must be unique in a Gateway: servers[{names[port.name]}] "
                    f"has {port.name!r} too",
                )
            names.setdefault(port.name, i)
            first, j = protocols.setdefault(port.number, (port.protocol, i))
            if not _may_share_port(first, port.protocol):
                yield (
                    ("servers", i, "port", "protocol"),
                    f"port {port.number} is servers[{j}]'s, with protocol {first}: servers on "
                    f"one port must use one protocol (HTTPS and TLS may share one, by SNI)",
                )

    def servers_on(self, number: int) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.port.number == number)


def _may_share_port(a: PortProtocol, b: PortProtocol) -> bool:
    return a == b or (a.is_tls and b.is_tls)
