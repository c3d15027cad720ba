"""kube-apiserver goes away for ten seconds: discovery keeps serving what it had, and when the
server is back it converges on what changed meanwhile, deletes included.

The control plane is this module's own, so stopping its API server disturbs no other test.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from istiolite.discovery.kube.kinds import KINDS
from istiolite.discovery.kube.reflector import Gone
from istiolite.discovery.kube.source import KubeSource
from istiolite.testing.apiserver import Binaries, ControlPlane, control_plane
from istiolite.testing.mesh import Discovery, Envoy
from istiolite.testing.wait import eventually_async as eventually
from tests.kube.support import (
    FIELD_MANAGER,
    VirtualService,
    clusters,
    endpoint_slice,
    endpoints,
    install_crds,
    new_namespace,
    rejected_updates,
    route_names,
    service,
    virtual_service,
)

pytestmark = [pytest.mark.kube, pytest.mark.envoy]

OUTAGE = 10.0


@pytest.fixture(scope="module")
def plane(kube_binaries: Binaries) -> Iterator[ControlPlane]:
    with control_plane(kube_binaries) as started:
        install_crds(started.kubeconfig)
        yield started


@pytest.fixture
async def client(plane: ControlPlane) -> AsyncIterator[AsyncClient]:
    config = KubeConfig.from_file(plane.kubeconfig)
    async with AsyncClient(config, field_manager=FIELD_MANAGER, trust_env=False) as c:
        yield c


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def cluster(name: str, ns: str) -> str:
    return f"outbound|9080||{name}.{ns}.svc.cluster.local"


def sidecar(discovery: Discovery, name: str, ip: str) -> Envoy:
    return Envoy(discovery.address, discovery.workdir, name=name, ip=ip).start()


async def test_discovery_serves_through_an_outage_and_misses_no_delete(
    plane: ControlPlane, client: AsyncClient, work: Path
) -> None:
    ns = await new_namespace(client)
    for name, address in (("alpha", "10.1.0.5"), ("beta", "10.1.0.6")):
        await client.create(service(ns, name, {"http": 9080}))
        await client.create(endpoint_slice(ns, name, [address], {"http": 9080}))
    await client.create(virtual_service(ns, "beta", ["beta-canary"]))
    beta_host = f"beta.{ns}.svc.cluster.local:9080"
    before = (await client.get(Namespace, ns)).metadata.resourceVersion  # type: ignore[union-attr]

    discovery = Discovery(None, work, extra_args=[f"--kubeconfig={plane.kubeconfig}"]).start()
    envoys = [sidecar(discovery, "first", "10.1.0.90")]
    try:
        envoys[0].wait_live()
        await eventually(
            lambda: route_names(envoys[0], "9080", beta_host) == ["beta-canary"],
            what="the initial config",
        )

        plane.stop_apiserver()
        stopped = time.monotonic()
        # Discovery keeps serving: a proxy that connects now still gets the whole mesh.
        assert discovery.get("/ready").status_code == 200
        envoys.append(sidecar(discovery, "during-outage", "10.1.0.91"))
        envoys[1].wait_live()
        for envoy in envoys:
            await eventually(
                functools.partial(has_config_before_the_outage, envoy, ns),
                what=f"{envoy.name} to have the last config during the outage",
            )
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))

        # Hold discovery still while the server comes back and the mesh changes, so the
        # changes are certain to happen before it reconnects.
        assert discovery.proc is not None
        os.kill(discovery.proc.pid, signal.SIGSTOP)
        try:
            plane.start_apiserver()
            await _assert_history_was_lost(client, before)
            await client.delete(Service, "beta", namespace=ns)
            await client.delete(EndpointSlice, "beta-abcde", namespace=ns)
            await client.delete(VirtualService, "beta", namespace=ns)
            await client.create(service(ns, "gamma", {"http": 9080}))
            await client.create(endpoint_slice(ns, "gamma", ["10.1.0.7"], {"http": 9080}))
            await client.apply(
                endpoint_slice(ns, "alpha", ["10.1.0.5", "10.1.0.8"], {"http": 9080}), force=True
            )
        finally:
            os.kill(discovery.proc.pid, signal.SIGCONT)

        for envoy in envoys:
            await eventually(
                functools.partial(has_config_after_the_outage, envoy, ns),
                what=f"{envoy.name} to converge after the outage",
            )
            assert not rejected_updates(envoy)
    finally:
        for envoy in envoys:
            envoy.stop()
        discovery.stop()


def has_config_before_the_outage(envoy: Envoy, ns: str) -> bool:
    return (
        endpoints(envoy, cluster("alpha", ns)) == {"10.1.0.5:9080"}
        and endpoints(envoy, cluster("beta", ns)) == {"10.1.0.6:9080"}
        and route_names(envoy, "9080", f"beta.{ns}.svc.cluster.local:9080") == ["beta-canary"]
    )


def has_config_after_the_outage(envoy: Envoy, ns: str) -> bool:
    return (
        cluster("beta", ns) not in clusters(envoy)
        and endpoints(envoy, cluster("gamma", ns)) == {"10.1.0.7:9080"}
        and endpoints(envoy, cluster("alpha", ns)) == {"10.1.0.5:9080", "10.1.0.8:9080"}
        and route_names(envoy, "9080", f"beta.{ns}.svc.cluster.local:9080") == []
    )


async def _assert_history_was_lost(client: AsyncClient, before: str | None) -> None:
    """The restarted server cannot resume a watch from before the outage: discovery must list."""
    assert before
    source = KubeSource(client, next(k for k in KINDS if k.kind == "Namespace"))
    with pytest.raises(Gone):
        async with asyncio.timeout(10):
            async for _ in source.watch(before):
                pass
