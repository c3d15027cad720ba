"""The app's rewritten Kubernetes probes: parsing the injector's JSON, and running each kind
against real local servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest

from istiolite.agent.probes import (
    GrpcProbe,
    HttpProbe,
    ProbeConfigError,
    TcpProbe,
    parse_app_probers,
    run_probe,
)
from tests.agent.harness import free_port, start_backend


def test_injector_json_becomes_typed_probes() -> None:
    text = json.dumps(
        {
            "/app-health/web/livez": {
                "httpGet": {
                    "path": "/live",
                    "port": 8080,
                    "httpHeaders": [{"name": "X-A", "value": "b"}],
                },
                "timeoutSeconds": 3,
            },
            "/app-health/web/readyz": {"tcpSocket": {"port": 8080}},
            "/app-health/grpc/startupz": {"grpc": {"port": 9090, "service": "shop"}},
        }
    )
    assert parse_app_probers(text) == {
        "/app-health/web/livez": HttpProbe(
            port=8080, path="/live", headers=(("X-A", "b"),), timeout=3.0
        ),
        "/app-health/web/readyz": TcpProbe(port=8080),
        "/app-health/grpc/startupz": GrpcProbe(port=9090, service="shop"),
    }


def test_no_probes_is_fine() -> None:
    assert parse_app_probers("") == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            '{"/app-health/web/alive": {"tcpSocket": {"port": 1}}}',
            "path must be /app-health/<container>/{livez,readyz,startupz}",
        ),
        (
            '{"/app-health/web/livez": {"exec": {"command": ["true"]}}}',
            "expected one of httpGet, tcpSocket, grpc",
        ),
        (
            '{"/app-health/web/livez": {"httpGet": {"port": "http"}}}',
            "['/app-health/web/livez'].httpGet.port: expected a number 1..65535, got 'http'",
        ),
        ("[1]", "expected an object of path to probe"),
        ("{", "not JSON"),
        (
            '{"/app-health/web/livez": {"httpGet": {"port": true}}}',
            "['/app-health/web/livez'].httpGet.port: expected a number 1..65535, got True",
        ),
        (
            '{"/app-health/web/livez": {"httpGet": "/live"}}',
            "['/app-health/web/livez'].httpGet: expected an object, got '/live'",
        ),
        (
            '{"/app-health/web/livez": {"tcpSocket": {"port": 80}, "timeoutSeconds": "abc"}}',
            "['/app-health/web/livez'].timeoutSeconds: expected whole seconds, at least 1",
        ),
        (
            '{"/app-health/web/livez": {"tcpSocket": {"port": 80}, "timeoutSeconds": 0}}',
            "['/app-health/web/livez'].timeoutSeconds: expected whole seconds, at least 1",
        ),
        (
            '{"/app-health/web/livez": {"httpGet": {"port": 80, "httpHeaders": {"a": "b"}}}}',
            "['/app-health/web/livez'].httpGet.httpHeaders: expected a list of {name, value}",
        ),
        (
            '{"/app-health/web/livez": {"httpGet": {"port": 80, "httpHeaders": [{"value": "b"}]}}}',
            "['/app-health/web/livez'].httpGet.httpHeaders[0].name: expected a header name",
        ),
        (
            '{"/app-health/web/livez": {"httpGet": {"port": 80, "path": 5}}}',
            "['/app-health/web/livez'].httpGet.path: expected a string, got 5",
        ),
        (
            '{"/app-health/web/livez": {"httpGet": {"port": 80, "scheme": "FTP"}}}',
            "['/app-health/web/livez'].httpGet.scheme: expected HTTP or HTTPS, got 'FTP'",
        ),
        (
            '{"/app-health/web/livez": {"tcpSocket": {"port": 80}, "grpc": {"port": 81}}}',
            "expected one of httpGet, tcpSocket, grpc",
        ),
        (
            '{"/app-health/web/livez": {"grpc": {"port": 81, "service": ["a"]}}}',
            "['/app-health/web/livez'].grpc.service: expected a string",
        ),
    ],
)
def test_bad_probe_config_says_where_and_what_is_accepted(spec: str, message: str) -> None:
    with pytest.raises(ProbeConfigError, match="ISTIO_KUBE_APP_PROBERS") as raised:
        parse_app_probers(spec)
    assert message in str(raised.value)


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    port = free_port()
    runner = await start_backend(port)
    yield port
    await runner.cleanup()


async def test_http_probe_passes_on_2xx(app_port: int) -> None:
    result = await run_probe(HttpProbe(port=app_port, path="/"))
    assert result.ok, result.detail


async def test_http_probe_fails_on_404_and_says_so(app_port: int) -> None:
    result = await run_probe(HttpProbe(port=app_port, path="/missing"))
    assert not result.ok
    assert result.detail == f"GET http://127.0.0.1:{app_port}/missing: HTTP 404"


async def test_http_probe_times_out() -> None:
    port = free_port()
    runner = await start_backend(port, delay=2.0)
    try:
        result = await run_probe(HttpProbe(port=port, path="/slow", timeout=0.2))
    finally:
        await runner.cleanup()
    assert not result.ok


async def test_tcp_probe_connects(app_port: int) -> None:
    assert (await run_probe(TcpProbe(port=app_port))).ok


async def test_tcp_probe_fails_when_nothing_listens() -> None:
    result = await run_probe(TcpProbe(port=free_port()))
    assert not result.ok
    assert "tcp 127.0.0.1:" in result.detail


def _health_server(statuses: dict[str, int]) -> grpc.aio.Server:
    """grpc.health.v1 with hand-encoded messages: service name in, status enum out."""

    def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        service = request[2:].decode() if request else ""
        if service not in statuses:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
        return bytes([0x08, statuses[service]])

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(check, lambda b: b, lambda b: b)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    return server


@pytest.fixture
async def grpc_port() -> AsyncIterator[int]:
    port = free_port()
    server = _health_server({"": 1, "shop": 1, "cart": 2})
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    yield port
    await server.stop(grace=None)


async def test_grpc_probe_passes_when_serving(grpc_port: int) -> None:
    assert (await run_probe(GrpcProbe(port=grpc_port))).ok
    assert (await run_probe(GrpcProbe(port=grpc_port, service="shop"))).ok


async def test_grpc_probe_fails_when_not_serving_or_unknown(grpc_port: int) -> None:
    not_serving = await run_probe(GrpcProbe(port=grpc_port, service="cart"))
    assert not not_serving.ok and "status 2" in not_serving.detail
    unknown = await run_probe(GrpcProbe(port=grpc_port, service="nope"))
    assert not unknown.ok and "NOT_FOUND" in unknown.detail
