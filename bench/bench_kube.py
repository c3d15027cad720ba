"""pilot-discovery on a real kube-apiserver: 1,000 Services, 5,000 Pods, one real Envoy.

Prints how long discovery takes from start to ready (every kind listed, first push), its RSS
with everything loaded, and the latency from a Service change (a port added or removed with
the Kubernetes API) to the Envoy accepting the new clusters: Envoy's own
`cluster_manager.cds.update_success` counter, polled every 5 ms on its admin port, so the
measurement does not load discovery. The same changes timed to an in-process KubeRegistry's
change callback show how much of that is the Kubernetes side. Needs `make kube-bins`.

`BENCH_SERVICES`, `BENCH_PODS_PER_SERVICE`, `BENCH_ROUNDS` change the scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, PodSpec, ServicePort, ServiceSpec
from lightkube.models.discovery_v1 import Endpoint, EndpointConditions, EndpointPort
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

from bench.bench_discovery import percentile, rss_mb
from istiolite.discovery.kube import KubeRegistry
from istiolite.install import crds
from istiolite.testing.apiserver import ControlPlane, control_plane
from istiolite.testing.mesh import Discovery, Envoy, workdir

SERVICES = int(os.environ.get("BENCH_SERVICES", "1000"))
PODS_PER_SERVICE = int(os.environ.get("BENCH_PODS_PER_SERVICE", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
NAMESPACES = 10
CONCURRENCY = 32
CDS_ACCEPTED = "cluster_manager.cds.update_success"

VirtualService = create_namespaced_resource(
    "networking.istio.io", "v1", "VirtualService", "virtualservices"
)
DestinationRule = create_namespaced_resource(
    "networking.istio.io", "v1", "DestinationRule", "destinationrules"
)


def ns_of(i: int) -> str:
    return f"ns-{i % NAMESPACES}"


def pod_ip(i: int, k: int) -> str:
    n = i * PODS_PER_SERVICE + k + 1
    return f"10.{64 + n // 65536}.{(n // 256) % 256}.{n % 256}"


def service(i: int, *, extra_port: bool = False) -> Service:
    ports = [ServicePort(name="http", port=8080, targetPort=8080)]
    if extra_port:
        ports.append(ServicePort(name="http-admin", port=9090, targetPort=9090))
    return Service(
        metadata=ObjectMeta(name=f"svc-{i}", namespace=ns_of(i)),
        spec=ServiceSpec(selector={"app": f"svc-{i}"}, ports=ports),
    )


def objects(i: int) -> list[Any]:
    ns, name = ns_of(i), f"svc-{i}"
    slice_ = EndpointSlice(
        metadata=ObjectMeta(
            name=f"{name}-abcde", namespace=ns, labels={"kubernetes.io/service-name": name}
        ),
        addressType="IPv4",
        endpoints=[
            Endpoint(addresses=[pod_ip(i, k)], conditions=EndpointConditions(ready=True))
            for k in range(PODS_PER_SERVICE)
        ],
        ports=[EndpointPort(name="http", port=8080, protocol="TCP")],
    )
    meta = {"name": name, "namespace": ns}
    rule: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "host": name,
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }
    routes: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": name, "subset": "v2"}}],
                },
                {
                    "route": [
                        {"destination": {"host": name, "subset": "v1"}, "weight": 90},
                        {"destination": {"host": name, "subset": "v2"}, "weight": 10},
                    ]
                },
            ],
        },
    }
    return [service(i), slice_, DestinationRule(**rule), VirtualService(**routes)]


def pod(i: int, k: int) -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=f"svc-{i}-{k}",
            namespace=ns_of(i),
            labels={"app": f"svc-{i}", "version": f"v{1 + k % 2}"},
        ),
        spec=PodSpec(containers=[Container(name="app", image="app")]),
    )


async def bounded(calls: list[Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Awaitable[Any]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


async def populate(plane: ControlPlane) -> None:
    config = KubeConfig.from_file(plane.kubeconfig)
    async with AsyncClient(config, field_manager="bench", trust_env=False) as kube:
        started = time.perf_counter()
        await bounded(
            [kube.create(Namespace(metadata=ObjectMeta(name=f"ns-{n}"))) for n in range(NAMESPACES)]
        )
        await bounded([kube.create(obj) for i in range(SERVICES) for obj in objects(i)])
        pods = [(i, k) for i in range(SERVICES) for k in range(PODS_PER_SERVICE)]
        await bounded([kube.create(pod(i, k)) for i, k in pods])
        # No kubelet runs here: the status a kubelet would write makes the pods workloads.
        await bounded(
            [
                kube.patch(
                    Pod.Status,
                    f"svc-{i}-{k}",
                    {
                        "status": {
                            "phase": "Running",
                            "podIP": pod_ip(i, k),
                            "conditions": [{"type": "Ready", "status": "True"}],
                        }
                    },
                    namespace=ns_of(i),
                    patch_type=PatchType.MERGE,
                )
                for i, k in pods
            ]
        )
        total = NAMESPACES + 4 * SERVICES + 2 * len(pods)
        elapsed = time.perf_counter() - started
        print(f"wrote {total} objects in {elapsed:.1f} s ({total / elapsed:.0f}/s)", flush=True)


class EnvoyAck:
    """Seen when the Envoy has accepted one more CDS response than when armed."""

    def __init__(self, envoy: Envoy) -> None:
        self.envoy, self.before = envoy, 0

    def _accepted(self) -> int:
        return self.envoy.stats(CDS_ACCEPTED).get(CDS_ACCEPTED, 0)

    def arm(self) -> None:
        self.before = self._accepted()

    async def seen(self) -> None:
        while self._accepted() == self.before:  # noqa: ASYNC110 - polls Envoy's admin port
            await asyncio.sleep(0.005)


class RegistryChange:
    """Seen when an in-process KubeRegistry reports a change."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def arm(self) -> None:
        self.event.clear()

    async def seen(self) -> None:
        await self.event.wait()


async def timed_changes(kube: AsyncClient, observer: EnvoyAck | RegistryChange) -> list[float]:
    """Add a port to a Service, then remove it again: each is one change, timed until seen."""
    samples = []
    for r in range(ROUNDS):
        changed = service((r // 2 * 37) % SERVICES, extra_port=r % 2 == 0)
        observer.arm()
        t0 = time.perf_counter()
        await kube.apply(changed, force=True)
        async with asyncio.timeout(30):
            await observer.seen()
        samples.append(time.perf_counter() - t0)
        await asyncio.sleep(0.3)
    return samples


async def registry_latency(plane: ControlPlane) -> list[float]:
    """The Kubernetes side alone: a write until the registry has it, nothing downstream."""
    observer = RegistryChange()
    config = KubeConfig.from_file(plane.kubeconfig)
    registry = KubeRegistry(AsyncClient(config, trust_env=False), observer.event.set)
    task = asyncio.create_task(registry.run())
    try:
        await registry.wait_synced(asyncio.Event())
        async with AsyncClient(config, field_manager="bench", trust_env=False) as kube:
            return await timed_changes(kube, observer)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def envoy_latency(plane: ControlPlane, envoy: Envoy) -> list[float]:
    config = KubeConfig.from_file(plane.kubeconfig)
    async with AsyncClient(config, field_manager="bench", trust_env=False) as kube:
        return await timed_changes(kube, EnvoyAck(envoy))


def report(what: str, samples: list[float]) -> None:
    print(
        f"{what}, {len(samples)} changes: p50 {1000 * percentile(samples, 50):.0f} ms, "
        f"p99 {1000 * percentile(samples, 99):.0f} ms, max {1000 * max(samples):.0f} ms",
        flush=True,
    )


def install_crds(plane: ControlPlane) -> None:
    with Client(
        KubeConfig.from_file(plane.kubeconfig), field_manager="bench", trust_env=False
    ) as c:
        for manifest in crds.load():
            c.apply(CustomResourceDefinition.from_dict(manifest), force=True)  # type: ignore[call-overload]
            name = manifest["metadata"]["name"]
            c.wait(CustomResourceDefinition, name, for_conditions=["Established"])


def main() -> None:
    print(
        f"{SERVICES} Services (+ EndpointSlice, VirtualService, DestinationRule each), "
        f"{SERVICES * PODS_PER_SERVICE} Pods in {NAMESPACES} namespaces; 1 Envoy",
        flush=True,
    )
    with control_plane() as plane, workdir() as work:
        print(f"kube-apiserver ready in {plane.startup_seconds:.1f} s", flush=True)
        install_crds(plane)
        asyncio.run(populate(plane))
        report("Service change -> KubeRegistry change", asyncio.run(registry_latency(plane)))
        started = time.perf_counter()
        discovery = Discovery(None, work, extra_args=[f"--kubeconfig={plane.kubeconfig}"]).start()
        assert discovery.proc is not None
        print(
            f"discovery ready (every kind listed, first push) in "
            f"{time.perf_counter() - started:.1f} s; RSS {rss_mb(discovery.proc.pid):.0f} MB",
            flush=True,
        )
        envoy = Envoy(
            discovery.address, work, name="svc-0-0", namespace="ns-0", ip=pod_ip(0, 0),
            labels={"app": "svc-0", "version": "v1"},
        ).start()  # fmt: skip
        try:
            envoy.wait_live(timeout=120)
            samples = asyncio.run(envoy_latency(plane, envoy))
            report("Service change -> Envoy CDS ACK (polled every 5 ms)", samples)
            print(f"discovery RSS after the rounds: {rss_mb(discovery.proc.pid):.0f} MB")
            _print_discovery_view(discovery)
        finally:
            if os.environ.get("BENCH_KEEP_LOG"):
                Path(os.environ["BENCH_KEEP_LOG"]).write_text(discovery.log.read_text())
            envoy.stop()
            discovery.stop()


def _print_discovery_view(discovery: Discovery) -> None:
    """Discovery's own clocks: from the registry's change to each ACK, and each push's work."""
    metrics = discovery.metrics()
    for key, count in sorted(metrics.items()):
        name, _, labels = key.partition("_count")
        if name in ("pilot_proxy_convergence_time", "pilot_xds_push_time") and count:
            mean = 1000 * metrics[f"{name}_sum{labels}"] / count
            print(f"{name}{labels} (discovery's view): mean {mean:.0f} ms over {count:.0f}")
