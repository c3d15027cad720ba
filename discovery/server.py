"""pilot-discovery as a process: registries in, debounced snapshots, ADS and HTTP out.

Changes from any registry mark the mesh dirty; a push follows after `debounce_after` seconds of
quiet, or at the latest `debounce_max` seconds after the first change, so a burst (a rollout
touching hundreds of endpoints) becomes one push instead of hundreds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import operator
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from istiolite.api import Resource
from istiolite.discovery.files import DirectoryWatch, FileRegistry
from istiolite.discovery.inject.template import SidecarValues
from istiolite.discovery.inject.webhook import WebhookServer
from istiolite.discovery.kube import KubeRegistry
from istiolite.discovery.metrics import Metrics
from istiolite.discovery.model import Proxy, build_snapshot
from istiolite.discovery.settings import Settings
from istiolite.discovery.translate import config_dump
from istiolite.discovery.xds.cache import Generation
from istiolite.discovery.xds.server import AdsServer

log = logging.getLogger(__name__)


class Registry(Protocol):
    def resources(self) -> list[Resource]: ...

    def errors(self) -> dict[str, list[str]]: ...


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class Debouncer:
    """Turns a stream of change marks into calls of `flush`, with a quiet period and a cap.

    `prepare`, when given, starts at the first mark of a burst and runs during the quiet
    period; `flush` comes after it. A lone change (the usual edit) is then built while it is
    debounced, and its push only has to publish it.
    """

    def __init__(
        self,
        flush: Callable[[float], Any],
        *,
        after: float,
        cap: float,
        prepare: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.flush, self.after, self.cap, self.prepare = flush, after, cap, prepare
        self._first: float | None = None
        self._last = 0.0
        self._event = asyncio.Event()

    def mark(self, at: float | None = None) -> None:
        """A change; `at` is when it happened, if before now (a file event, then its parse)."""
        now = time.monotonic()
        first = now if at is None else min(at, now)
        self._first = first if self._first is None else min(self._first, first)
        self._last = now
        self._event.set()

    async def run(self) -> None:
        while True:
            await self._event.wait()
            prepared = asyncio.ensure_future(self.prepare()) if self.prepare else None
            try:
                await self._quiet()
                if prepared is not None:
                    await prepared
            finally:
                if prepared is not None:
                    prepared.cancel()
            first, self._first = self._first, None
            assert first is not None
            await self.flush(first)

    async def _quiet(self) -> None:
        while True:
            self._event.clear()
            assert self._first is not None
            now = time.monotonic()
            quiet_until = self._last + self.after
            deadline = self._first + self.cap
            if now >= quiet_until or now >= deadline:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(quiet_until, deadline) - now)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A generation built ahead of its push, and what it was built from."""

    resources: list[Resource]
    base: Generation | None  # the generation in force then
    generation: Generation | None  # None: the proxies would see no change

    def fits(self, resources: list[Resource], current: Generation | None) -> bool:
        same = len(resources) == len(self.resources) and all(
            map(operator.is_, resources, self.resources)
        )
        return same and current is self.base


class Discovery:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        # One builder thread: translation is CPU work that must not stall the event loop, and
        # one thread means the first proxy to need a config builds it and the rest reuse it.
        self.builder = ThreadPoolExecutor(1, thread_name_prefix="xds-build")
        self.ads = AdsServer(builder=self.builder, metrics=self.metrics)
        self.debouncer = Debouncer(
            self._push,
            after=settings.debounce_after,
            cap=settings.debounce_max,
            prepare=self._prepare,
        )
        self._prepared: _Prepared | None = None
        self.registries: list[Registry] = []
        self.watch: DirectoryWatch | None = None  # of --config-dir
        self.stopped: dict[str, str] = {}  # registry tasks that ended on their own, and why
        self.ready = False
        self.metrics.config_errors.set_function(
            lambda: sum(len(r.errors()) for r in self.registries)
        )
        self.metrics.config_dir_watching.set_function(
            lambda: float(self.watch is not None and self.watch.status.watching)
        )

    def changed(self, at: float | None = None) -> None:
        self.debouncer.mark(at)

    async def _prepare(self) -> None:
        """Build and warm the next generation while the debouncer waits for quiet."""
        try:
            resources, base = self._resources(), self.ads.generation
            generation = await self._next_generation(resources)
            if generation is not None:
                await self.ads.warm(generation)
            self._prepared = _Prepared(resources, base, generation)
        except Exception:
            log.exception("building the next generation ahead of its push failed")

    async def _push(self, changed_at: float) -> None:
        started = time.perf_counter()
        resources = self._resources()
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared.fits(resources, self.ads.generation):
            generation = prepared.generation
        else:  # more changes came after the first of the burst: build what is current now
            generation = await self._next_generation(resources)
        if generation is None:
            return  # nothing the proxies see has changed
        first = self.ads.generation is None
        self.ads.publish(generation, changed_at=changed_at)
        if first:
            # The initial load is most of the heap and lives long. Left to the cyclic collector,
            # each full pass over it stalls the event loop and the builder for 100-300 ms (at
            # 6,000 resources), in the middle of some push. Frozen (after one collection, so no
            # garbage is kept) it is never traversed again; it is still freed by refcounting.
            gc.collect()
            gc.freeze()
        log.info(
            "pushing generation %d: %d services to %d proxies (%.0f ms after the change, "
            "%.0f ms to publish)",
            generation.number,
            len(generation.snapshot.services),
            len(self.ads.connections),
            1000 * (time.monotonic() - changed_at),
            1000 * (time.perf_counter() - started),
        )

    def _resources(self) -> list[Resource]:
        return [r for registry in self.registries for r in registry.resources()]

    async def _next_generation(self, resources: list[Resource]) -> Generation | None:
        """The generation of these resources; None when proxies would see no change."""
        current = self.ads.generation
        previous = current.snapshot if current else None
        snapshot = await asyncio.get_running_loop().run_in_executor(
            self.builder,
            lambda: build_snapshot(
                resources,
                domain_suffix=self.settings.domain_suffix,
                root_namespace=self.settings.root_namespace,
                previous=previous,
            ),
        )
        self.metrics.snapshots.inc()
        if current is not None and current.snapshot == snapshot:
            return None
        return self.ads.next_generation(snapshot)

    # --- HTTP: readiness and debug ----------------------------------------------------------

    def http_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/debug/syncz", self._syncz)
        app.router.add_get("/debug/config_dump", self._config_dump)
        app.router.add_get("/debug/configz", self._configz)
        app.router.add_get("/metrics", self._metrics)
        return app

    def monitoring_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _ready(self, _: web.Request) -> web.Response:
        if self.stopped:
            reasons = "; ".join(f"{name}: {why}" for name, why in self.stopped.items())
            return web.Response(status=503, text=f"not ready: stopped watching ({reasons})\n")
        if self.ready and self.ads.generation is not None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready: no configuration loaded yet\n")

    async def _syncz(self, _: web.Request) -> web.Response:
        rows = [c.status() for c in self.ads.connections.values()]
        generation = self.ads.generation
        return web.json_response(
            {"generation": generation.number if generation else 0, "proxies": rows},
            dumps=json.dumps,  # compact: this page grows with the mesh
        )

    async def _configz(self, _: web.Request) -> web.Response:
        errors: dict[str, list[str]] = {}
        for registry in self.registries:
            errors.update(registry.errors())
        resources = [r for registry in self.registries for r in registry.resources()]
        counts: dict[str, int] = {}
        for r in resources:
            counts[r.KIND] = counts.get(r.KIND, 0) + 1
        page: dict[str, Any] = {"resources": counts, "errors": errors}
        if self.watch is not None:
            page["configDir"] = {"path": str(self.watch.root), **asdict(self.watch.status)}
        return web.json_response(page, dumps=lambda o: json.dumps(o, indent=2))

    async def _config_dump(self, request: web.Request) -> web.Response:
        wanted = request.query.get("proxyID", "")
        generation = self.ads.generation
        match = next(
            (
                c.proxy
                for c in self.ads.connections.values()
                if c.proxy is not None
                and wanted in (c.proxy.id, f"{c.proxy.name}.{c.proxy.namespace}")
            ),
            None,
        )
        if generation is None or match is None:
            return web.json_response({"error": f"no connected proxy {wanted!r}"}, status=404)
        dump = await asyncio.get_running_loop().run_in_executor(
            self.builder, _dump, generation.snapshot, match
        )
        return web.json_response(dump, dumps=lambda o: json.dumps(o, indent=2))

    async def _metrics(self, _: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        tasks: list[asyncio.Task[Any]] = []
        if self.settings.config_dir is not None:
            files = FileRegistry(self.settings.config_dir, self.changed)
            # Off the loop: parsing a large directory takes seconds.
            await asyncio.get_running_loop().run_in_executor(None, files.load_all)
            self.registries.append(files)
            self.watch = DirectoryWatch(files)
            tasks.append(self._registry_task(self.watch.run(stop), "file-registry", stop))
        if self.settings.kubeconfig is not None or self.settings.config_dir is None:
            kube = KubeRegistry.connect(self.settings.kubeconfig, self.changed)
            self.registries.append(kube)
            tasks.append(self._registry_task(kube.run(), "kube-registry", stop))
            # Serving before every kind is listed would hand proxies a partial mesh.
            if not await kube.wait_synced(stop):
                for task in tasks:
                    task.cancel()
                return
        await self._push(time.monotonic())
        tasks.append(asyncio.create_task(self.debouncer.run(), name="debouncer"))

        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        server.add_generic_rpc_handlers([self.ads.handler()])
        server.add_insecure_port(self.settings.grpc_addr)
        await server.start()
        runners = [
            await _serve_http(self.http_app(), self.settings.http_addr),
            await _serve_http(self.monitoring_app(), self.settings.monitoring_addr),
        ]
        webhook = await self._start_webhook()
        self.ready = True
        log.info(
            "pilot-discovery serving xDS on %s, HTTP on %s",
            self.settings.grpc_addr,
            self.settings.http_addr,
        )
        try:
            await stop.wait()
        finally:
            self.ready = False
            for task in tasks:
                task.cancel()
            await server.stop(grace=1)
            for runner in runners:
                await runner.cleanup()
            if webhook is not None:
                await webhook.close()
            self.builder.shutdown(wait=False, cancel_futures=True)

    def _registry_task(
        self, work: Coroutine[Any, Any, None], name: str, stop: asyncio.Event
    ) -> asyncio.Task[None]:
        """A registry's task: should it ever end before `stop`, /ready says so, and the log why.

        Each registry retries its own failures; this is the last line, for what escapes them.
        """
        task = asyncio.create_task(work, name=name)

        def ended(task: asyncio.Task[None]) -> None:
            if stop.is_set() or task.cancelled():
                return
            error = task.exception()
            self.stopped[name] = repr(error) if error else "returned"
            log.error("the %s task stopped: the mesh no longer follows it", name, exc_info=error)

        task.add_done_callback(ended)
        return task

    async def _start_webhook(self) -> WebhookServer | None:
        cert, key = self.settings.webhook_cert, self.settings.webhook_key
        if cert is None or key is None:
            log.info("injection webhook not served: no --webhook-cert/--webhook-key given")
            return None
        values = SidecarValues(
            proxy_image=self.settings.proxy_image,
            image_pull_policy=self.settings.proxy_image_pull_policy,
            discovery_address=self.settings.sidecar_discovery_address,
            native_sidecar=self.settings.native_sidecar,
        )
        host, port = split_addr(self.settings.webhook_addr)
        server = WebhookServer(
            values,
            cert_file=cert,
            key_file=key,
            host=host,
            port=port,
            registry=self.metrics.registry,
        )
        await server.start()
        return server


def _dump(snapshot: Any, proxy: Proxy) -> dict[str, Any]:
    return {"proxy": proxy.id, **config_dump(snapshot, proxy)}


async def _serve_http(app: web.Application, addr: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = split_addr(addr)
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Discovery(settings).run(stop)
