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
    """Parse the injector's JSON; errors name the path and field that is wrong.

    Shapes are Kubernetes' (a probe has one handler; ports are numbers, named ports having been
    resolved by the injector; timeoutSeconds is a whole number of seconds, at least 1).
    """
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
    handlers = [kind for kind in ("httpGet", "tcpSocket", "grpc") if kind in spec]
    if len(handlers) != 1:
        raise ProbeConfigError(f"{where}: expected one of httpGet, tcpSocket, grpc")
    [kind] = handlers
    handler = _object(spec[kind], f"{where}.{kind}")
    timeout = _timeout(spec.get("timeoutSeconds", 1), f"{where}.timeoutSeconds")
    port = _port(handler, f"{where}.{kind}")
    host = _text(handler, "host", f"{where}.{kind}") or "127.0.0.1"
    if kind == "httpGet":
        scheme = _text(handler, "scheme", f"{where}.httpGet") or "HTTP"
        if scheme.upper() not in ("HTTP", "HTTPS"):
            problem = f"expected HTTP or HTTPS, got {scheme!r}"
            raise ProbeConfigError(f"{where}.httpGet.scheme: {problem}")
        return HttpProbe(
            port=port,
            path=_text(handler, "path", f"{where}.httpGet") or "/",
            scheme=scheme.upper(),
            host=host,
            headers=_headers(handler.get("httpHeaders", []), f"{where}.httpGet.httpHeaders"),
            timeout=timeout,
        )
    if kind == "tcpSocket":
        return TcpProbe(port=port, host=host, timeout=timeout)
    return GrpcProbe(port=port, service=_text(handler, "service", f"{where}.grpc"), timeout=timeout)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProbeConfigError(f"{where}: expected an object, got {value!r}")
    return value


def _text(spec: Mapping[str, Any], key: str, where: str) -> str:
    value = spec.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProbeConfigError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def _timeout(value: Any, where: str) -> float:
    # bool is an int to Python, not to Kubernetes.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProbeConfigError(f"{where}: expected whole seconds, at least 1, got {value!r}")
    return float(value)


def _headers(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise ProbeConfigError(f"{where}: expected a list of {{name, value}}, got {value!r}")
    headers = []
    for index, item in enumerate(value):
        header = _object(item, f"{where}[{index}]")
        name = _text(header, "name", f"{where}[{index}]")
        if not name:
            raise ProbeConfigError(f"{where}[{index}].name: expected a header name")
        headers.append((name, _text(header, "value", f"{where}[{index}]")))
    return tuple(headers)


def _port(spec: Mapping[str, Any], where: str) -> int:
    port = spec.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
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
