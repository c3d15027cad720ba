"""`pilot-agent proxy router`: a gateway's agent. The same bootstrap, supervision and readiness
as a sidecar's; a node id that says `router`, so discovery sends it its Gateways' listeners
(binding the gateway's own ports, no capture); and a drain of every listener on shutdown.

Readiness is Istio's for any proxy: Envoy LIVE, with its first listeners and clusters from
discovery applied. A gateway that no Gateway configures yet gets no listeners and is ready all
the same, as Istio's is: ready means configured as discovery wants it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import click
import grpc
import httpx2 as httpx
import pytest
from click.testing import CliRunner
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from istiolite.agent.bootstrap import ProxyType, identity_from_env, render_bootstrap, render_json
from istiolite.agent.cli import main
from istiolite.agent.settings import ProxySettings
from istiolite.testing.mesh import Discovery, acked_all
from istiolite.testing.netns import NetNamespace
from tests.agent.golden import assert_golden
from tests.agent.harness import POD_IP, Agent, free_port, sidecar_argv, sync_status

GATEWAY_POD = "istio-ingressgateway-6f7c9d-x2k4p"
GATEWAY_ENV = {
    "POD_NAME": GATEWAY_POD,
    "POD_NAMESPACE": "istio-system",
    "INSTANCE_IP": "10.244.0.9",
    "SERVICE_ACCOUNT": "istio-ingressgateway",
    "ISTIO_META_CLUSTER_ID": "Kubernetes",
    "ISTIO_METAJSON_LABELS": '{"app": "istio-ingressgateway", "istio": "ingressgateway"}',
}
# The same gateway in the tests' pod network namespace (harness.py), at its address there.
POD_GATEWAY_ENV = {**GATEWAY_ENV, "INSTANCE_IP": POD_IP}
ROUTER_NODE_ID = f"router~{POD_IP}~{GATEWAY_POD}.istio-system~istio-system.svc.cluster.local"


def test_router_bootstrap_matches_golden() -> None:
    identity = identity_from_env(GATEWAY_ENV, ProxyType.ROUTER)
    assert_golden("bootstrap_router.json", render_json(render_bootstrap(ProxySettings(), identity)))


def test_a_router_differs_from_a_sidecar_in_its_node_type_alone() -> None:
    sidecar = render_bootstrap(ProxySettings(), identity_from_env(GATEWAY_ENV))
    router = render_bootstrap(ProxySettings(), identity_from_env(GATEWAY_ENV, ProxyType.ROUTER))
    assert router["node"]["id"] == (
        f"router~10.244.0.9~{GATEWAY_POD}.istio-system~istio-system.svc.cluster.local"
    )
    assert router["node"]["cluster"] == "istio-ingressgateway.istio-system"
    assert router["node"]["metadata"]["LABELS"] == {
        "app": "istio-ingressgateway",
        "istio": "ingressgateway",
    }
    assert sidecar["node"]["id"].startswith("sidecar~")
    sidecar["node"]["id"] = router["node"]["id"]
    assert sidecar == router


def _options(command: str) -> list[list[str]]:
    proxy = main.commands["proxy"]
    assert isinstance(proxy, click.Group)
    return [param.opts for param in proxy.commands[command].params]


def test_the_router_command_takes_every_sidecar_setting() -> None:
    assert _options("router") == _options("sidecar")


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--drain-duration", "5"], {}),
        ([], {"POD_NAMESPACE": "Istio_System"}),
        (["--status-port", "15000"], {}),  # the admin port's
    ],
)
def test_the_router_refuses_what_the_sidecar_refuses_in_the_same_words(
    tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    def run(command: str) -> tuple[int, str]:
        argv = ["proxy", command, "--config-path", str(tmp_path), *flags]
        result = CliRunner().invoke(main, argv, env={**GATEWAY_ENV, **env})
        return result.exit_code, result.output

    code, output = run("router")
    assert (code, output) == run("sidecar")
    assert code == 2 and len(output.splitlines()) == 1 and output.startswith("pilot-agent: invalid")


# --- with a real Envoy, in a pod's network namespace ----------------------------------------


def router_argv(tmp: Path, discovery_address: str, *extra: str) -> list[str]:
    argv = sidecar_argv(tmp, discovery_address, "--health-check-interval", "200ms", *extra)
    argv[argv.index("sidecar")] = "router"
    return argv


@pytest.fixture
def start_router(pod: NetNamespace, tmp_path: Path) -> Any:
    started: list[Agent] = []

    def start(discovery_address: str) -> Agent:
        agent = Agent(tmp_path, router_argv(tmp_path, discovery_address), env=POD_GATEWAY_ENV)
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


async def _eventually(check: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (found := await check()):
        assert time.monotonic() < deadline, f"no {what} after {within}s"
        await asyncio.sleep(0.05)
    return found


@pytest.mark.envoy
@pytest.mark.netns
async def test_a_router_is_not_ready_until_discovery_answers_then_is_known_as_a_router(
    control_plane: Discovery, start_router: Callable[[str], Agent]
) -> None:
    agent = start_router(control_plane.address)

    async def waiting_for_config() -> bool:
        ready, text = await agent.ready()
        return not ready and "has not received listeners (LDS) yet" in text

    await _eventually(waiting_for_config, "readiness saying why it is not ready")
    control_plane.start()
    await agent.wait_ready(limit=30)

    async def acked() -> dict[str, Any] | None:
        row = sync_status(control_plane, ROUTER_NODE_ID)
        return row if acked_all(row) else None

    row = await _eventually(acked, "ACK of every type from the router")
    assert row["proxy"] == ROUTER_NODE_ID
    async with httpx.AsyncClient(timeout=5) as client:
        kubelet = await client.get("http://127.0.0.1:15021/healthz/ready")
        drain = await client.post("http://127.0.0.1:15020/drain")
    assert kubelet.status_code == 200
    assert (drain.status_code, drain.text) == (200, "draining listeners\n")
    assert ROUTER_NODE_ID in agent.log()


class _EmptyAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """A control plane with nothing for this proxy: every request gets an empty answer."""

    async def StreamAggregatedResources(
        self, requests: AsyncIterator[discovery_pb2.DiscoveryRequest], context: object
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        async for request in requests:
            if not request.response_nonce:  # a new subscription, not an ACK
                yield discovery_pb2.DiscoveryResponse(
                    type_url=request.type_url, version_info="1", nonce="1"
                )


@contextlib.asynccontextmanager
async def empty_control_plane() -> AsyncIterator[str]:
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_EmptyAds(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


@pytest.mark.envoy
@pytest.mark.netns
async def test_a_router_no_gateway_configures_is_ready_with_its_static_listeners_only(
    start_router: Callable[[str], Agent],
) -> None:
    async with empty_control_plane() as address:
        agent = start_router(address)
        await agent.wait_ready(limit=30)
        async with httpx.AsyncClient(timeout=5) as client:
            listeners = (await client.get("http://127.0.0.1:15000/listeners?format=json")).json()
            kubelet = await client.get("http://127.0.0.1:15021/healthz/ready")
    names = sorted(entry["name"] for entry in listeners["listener_statuses"])
    assert names == ["0.0.0.0_15021", "0.0.0.0_15090"]  # no capture listeners: nothing bound
    assert (kubelet.status_code, kubelet.text) == (200, "ready\n")
