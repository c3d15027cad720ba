"""The application's own Kubernetes probes, run by the agent on the kubelet's behalf.

With traffic capture on, a kubelet probe to the app's port would be intercepted by Envoy.
The injector therefore points the pod's probes at the agent
(`/app-health/<container>/{livez,readyz,startupz}` on 15020) and hands the original probes
over in the environment variable `ISTIO_KUBE_APP_PROBERS`: a JSON object from that path to
the original probe, with Kubernetes' field names, e.g.

    {"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080},
                                "timeoutSeconds": 2}}

HTTP (success is a status in 200..399, like the kubelet), TCP (a connection) and gRPC
(grpc.health.v1 answers SERVING) are supported. The agent is inside the pod, so it probes
127.0.0.1 unless the probe names a host; its uid is not captured, so Envoy is bypassed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

APP_PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"
_KINDS = ("livez", "readyz", "startupz")


@dataclass(frozen=True, slots=True)
class HttpProbe:
    port: int
    path: str = "/"
    scheme: str = "HTTP"
    host: str = "127.0.0.1"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class TcpProbe:
    port: int
    host: str = "127.0.0.1"
    timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class GrpcProbe:
    port: int
    service: str = ""
    host: str = "127.0.0.1"
    timeout: float = 1.0


AppProbe = HttpProbe | TcpProbe | GrpcProbe


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


class ProbeConfigError(ValueError):
    pass


def parse_app_probers(text: str) -> dict[str, AppProbe]:
    """Parse the injector's JSON; errors name the path and field that is wrong."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProbeConfigError(f"{APP_PROBERS_ENV}: not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ProbeConfigError(f"{APP_PROBERS_ENV}: expected an object of path to probe")
    return {path: _parse_one(path, spec) for path, spec in raw.items()}


def _parse_one(path: str, spec: Any) -> AppProbe:
    where = f"{APP_PROBERS_ENV}[{path!r}]"
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "app-health" or parts[2] not in _KINDS:
        raise ProbeConfigError(
            f"{where}: path must be /app-health/<container>/{{{','.join(_KINDS)}}}"
        )
    if not isinstance(spec, dict):
        raise ProbeConfigError(f"{where}: expected a probe object")
    timeout = float(spec.get("timeoutSeconds", 1))
    if "httpGet" in spec:
        http = spec["httpGet"]
        headers = tuple((h["name"], h["value"]) for h in http.get("httpHeaders", []))
        return HttpProbe(
            port=_port(http, f"{where}.httpGet"),
            path=http.get("path", "/"),
            scheme=str(http.get("scheme", "HTTP")).upper(),
            host=http.get("host") or "127.0.0.1",
            headers=headers,
            timeout=timeout,
        )
    if "tcpSocket" in spec:
        tcp = spec["tcpSocket"]
        return TcpProbe(
            port=_port(tcp, f"{where}.tcpSocket"),
            host=tcp.get("host") or "127.0.0.1",
            timeout=timeout,
        )
    if "grpc" in spec:
        grpc_spec = spec["grpc"]
        return GrpcProbe(
            port=_port(grpc_spec, f"{where}.grpc"),
            service=grpc_spec.get("service") or "",
            timeout=timeout,
        )
    raise ProbeConfigError(f"{where}: expected one of httpGet, tcpSocket, grpc")


def _port(spec: Mapping[str, Any], where: str) -> int:
    port = spec.get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        # Named ports are resolved by the injector, which sees the container spec.
        raise ProbeConfigError(f"{where}.port: expected a number 1..65535, got {port!r}")
    return port


async def run_probe(probe: AppProbe) -> ProbeResult:
    if isinstance(probe, HttpProbe):
        return await _probe_http(probe)
    if isinstance(probe, TcpProbe):
        return await _probe_tcp(probe)
    return await _probe_grpc(probe)


async def _probe_http(probe: HttpProbe) -> ProbeResult:
    url = f"{probe.scheme.lower()}://{probe.host}:{probe.port}{probe.path}"
    # Like the kubelet: HTTPS probes do not verify the certificate, and any status in
    # 200..399 passes, so a redirect is not followed: its 3xx is the answer.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=False, force_close=True),
        timeout=aiohttp.ClientTimeout(total=probe.timeout),
    ) as session:
        try:
            async with session.get(url, headers=probe.headers, allow_redirects=False) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            return ProbeResult(False, f"GET {url}: {_describe(error)}")
    return ProbeResult(200 <= status < 400, f"GET {url}: HTTP {status}")


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


async def _probe_tcp(probe: TcpProbe) -> ProbeResult:
    target = f"tcp {probe.host}:{probe.port}"
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(probe.host, probe.port), probe.timeout
        )
    except (OSError, TimeoutError) as error:
        return ProbeResult(False, f"{target}: {error or 'timed out'}")
    writer.close()
    await writer.wait_closed()
    return ProbeResult(True, f"{target}: connected")


# grpc.health.v1 has two one-field messages; encoding them by hand spares a dependency.
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_SERVING = 1


def _encode_health_request(service: str) -> bytes:
    name = service.encode()
    return b"\x0a" + _varint(len(name)) + name if name else b""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_health_status(data: bytes) -> int:
    """Field 1 (status, an enum varint) of HealthCheckResponse; 0 (UNKNOWN) when absent."""
    if len(data) >= 2 and data[0] == 0x08:
        return data[1]
    return 0


async def _probe_grpc(probe: GrpcProbe) -> ProbeResult:
    # Imported here: grpc adds ~9 MB to the agent's RSS, worth it only for pods with gRPC probes.
    import grpc  # noqa: PLC0415

    target = f"grpc {probe.host}:{probe.port}"
    async with grpc.aio.insecure_channel(f"{probe.host}:{probe.port}") as channel:
        check = channel.unary_unary(
            _HEALTH_CHECK,
            request_serializer=_encode_health_request,
            response_deserializer=_decode_health_status,
        )
        try:
            status = await check(probe.service, timeout=probe.timeout)
        except grpc.aio.AioRpcError as error:
            return ProbeResult(False, f"{target}: {error.code().name} {error.details()}")
    ok = status == _SERVING
    return ProbeResult(ok, f"{target}: {'SERVING' if ok else f'status {status}'}")
