"""The sidecar as the injector starts it: the installed `pilot-agent proxy sidecar` with Istio's
default ports, the pod's identity in its environment and its labels in the downward-API file,
against the real pilot-discovery; then a call from outside the pod through Envoy to the app."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from istiolite.testing.mesh import Discovery, acked_all
from tests.agent.harness import (
    APP_PORT,
    NODE_ID,
    POD_IP,
    POD_NAME,
    POD_NAMESPACE,
    Agent,
    sync_status,
)

pytestmark = [pytest.mark.envoy, pytest.mark.netns]


async def test_sidecar_command_becomes_ready_and_discovery_sees_every_xds_type_acked(
    tmp_path: Path, discovery: Discovery, app: None
) -> None:
    (tmp_path / "labels").write_text('app="web"\nversion="v1"\n')
    argv = [
        str(Path(sys.executable).parent / "pilot-agent"), "proxy", "sidecar",
        "--discovery-address", discovery.address,
        "--config-path", str(tmp_path / "proxy"),
        "--pod-labels-path", str(tmp_path / "labels"),
    ]  # fmt: skip
    env = {
        "POD_NAME": POD_NAME,
        "POD_NAMESPACE": POD_NAMESPACE,
        "INSTANCE_IP": POD_IP,
        "SERVICE_ACCOUNT": "web",
        "ISTIO_META_CLUSTER_ID": "Kubernetes",
    }
    agent = Agent(tmp_path, argv, env=env)
    agent.start()
    try:
        await agent.wait_ready(limit=30)
        row = await _eventually_acked(discovery)
        generated = discovery.get(f"/debug/config_dump?proxyID={POD_NAME}.{POD_NAMESPACE}").json()
        async with httpx.AsyncClient(timeout=5, verify=False) as client:
            through_envoy = await client.get(f"http://{POD_IP}:{APP_PORT}/")
            readiness = await client.get("http://127.0.0.1:15021/healthz/ready")
    finally:
        agent.stop()

    assert row["proxy"] == f"sidecar~{POD_IP}~{POD_NAME}.{POD_NAMESPACE}~shop.svc.cluster.local"
    assert row["proxy"] == NODE_ID
    assert {name: t["acked"] == t["sent"] for name, t in row["types"].items()} == {
        "CDS": True,
        "EDS": True,
        "LDS": True,
        "RDS": True,
    }
    # Discovery found the workload from the node metadata: an inbound chain for its port,
    # which carries a call to the pod's IP to the app.
    [inbound] = [x for x in generated["listeners"] if x["name"] == "virtualInbound"]
    assert [chain["name"] for chain in inbound["filterChains"]] == [f"inbound|{APP_PORT}||"]
    assert (through_envoy.status_code, through_envoy.text) == (200, "hello")
    assert readiness.status_code == 200


async def _eventually_acked(discovery: Discovery, limit: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    row = sync_status(discovery)
    while not acked_all(row):
        assert time.monotonic() < deadline, f"not every type ACKed: {row}"
        await asyncio.sleep(0.05)
        row = sync_status(discovery)
    assert row is not None
    return row
