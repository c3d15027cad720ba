"""The injection webhook: `POST /inject` over TLS on 15017, served by pilot-discovery.

The logic is admission.py's `answer`; this module is only the server around it: aiohttp on
pilot-discovery's event loop, a TLS context whose certificate follows its files, and Istio's
injection counters (`sidecar_injection_{requests,success,skip,failure}_total`).

Certificate reload: the Secret holding the serving pair may be rotated under a running server
(the kubelet swaps mounted files atomically). The files are polled; a changed pair is loaded
into a fresh SSLContext, and only a pair that loads cleanly replaces the old one, so a rotation
caught half-way keeps the old pair serving. The listening socket's context has an SNI callback,
which OpenSSL runs early in every handshake, SNI or not; it hands the connection the newest
context. Connections already open keep the certificate they were accepted with.

pilot-discovery runs `await serve(values, cert_file=..., key_file=..., host=..., port=15017,
registry=...)` as one of its tasks, with its own metrics registry; tests and benchmarks use
`WebhookServer` directly to learn the bound port.

The handler runs the mutation on the event loop it shares with xDS: about a millisecond per
pod (see `make bench BENCH=inject`), which is less than handing it to a thread would cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from istiolite.discovery.inject.admission import Outcome, answer
from istiolite.discovery.inject.template import SidecarValues

PATH = "/inject"
# Pods near the API server's own object size limit (~1.5 MiB) still fit.
MAX_BODY = 4 * 1024 * 1024

log = logging.getLogger(__name__)


class InjectionMetrics:
    """Istio's injection counters, in the registry pilot-discovery serves on /metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, registry=registry)

        self.requests = counter("sidecar_injection_requests", "AdmissionReviews received")
        success = counter("sidecar_injection_success", "pods injected")
        skip = counter("sidecar_injection_skip", "pods and objects let through unchanged")
        failure = counter("sidecar_injection_failure", "reviews refused: malformed or denied")
        self.by_outcome = {
            "injected": success,
            "skipped": skip,
            "ignored": skip,
            "denied": failure,
            "bad": failure,
        }

    def count(self, outcome: Outcome) -> None:
        self.requests.inc()
        self.by_outcome[outcome].inc()


def make_app(values: SidecarValues, metrics: InjectionMetrics) -> web.Application:
    """The aiohttp application: one route, the pure `answer` behind it."""

    async def handle(request: web.Request) -> web.Response:
        reply = answer(await request.read(), values)
        metrics.count(reply.outcome)
        if reply.review is None:
            log.warning("refused a review from %s: %s", request.remote, reply.text.strip())
            return web.Response(status=reply.status, text=reply.text)
        if reply.outcome == "denied":
            log.info("denied: %s", reply.review["response"]["status"]["message"])
        body = json.dumps(reply.review).encode()
        return web.Response(status=reply.status, body=body, content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(PATH, handle)
    return app


class CertReloader:
    """The serving certificate from `cert_file` and `key_file`, following changes to them."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._seen = self._fingerprint()
        self.current = self._load()
        self._listening = self.current
        self._listening.sni_callback = self._choose

    def listening_context(self) -> ssl.SSLContext:
        """The context for the listening socket; it hands each handshake the newest pair."""
        return self._listening

    def reload_if_changed(self) -> bool:
        """Load the pair again if its files changed; True when a new pair is now served."""
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            self.current = self._load()
        except (OSError, ssl.SSLError) as e:
            log.warning("keeping the old webhook certificate: %s: %s", self.cert_file, e)
            return False
        log.info("webhook certificate reloaded from %s", self.cert_file)
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()

    def _choose(
        self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        connection.context = self.current

    def _load(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _fingerprint(self) -> tuple[tuple[int, int, int], ...]:
        """Inode, mtime and size of both files; (0, 0, 0) for a file that is missing."""
        stats = []
        for path in (self.cert_file, self.key_file):
            try:
                st = os.stat(path)
                stats.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                stats.append((0, 0, 0))
        return tuple(stats)


class WebhookServer:
    """The webhook, listening until closed. `port` is the bound port (useful with port 0)."""

    def __init__(
        self,
        values: SidecarValues,
        *,
        cert_file: Path,
        key_file: Path,
        host: str = "0.0.0.0",
        port: int = 15017,
        reload_interval: float = 2.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.reload_interval = reload_interval
        self.certs = CertReloader(cert_file, key_file)
        self.metrics = InjectionMetrics(registry or CollectorRegistry())
        app = make_app(values, self.metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, ssl_context=self.certs.listening_context()
        )
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._watch = asyncio.create_task(self.certs.watch(self.reload_interval))
        log.info("injection webhook serving https://%s:%d%s", self.host, self.port, PATH)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._runner.cleanup()
        # Closed connections finish closing their sockets on the next loop iterations; let them,
        # so a caller that stops its loop right after close() leaks nothing.
        await asyncio.sleep(0.01)


async def serve(
    values: SidecarValues,
    *,
    cert_file: Path,
    key_file: Path,
    host: str = "0.0.0.0",
    port: int = 15017,
    registry: CollectorRegistry | None = None,
) -> None:
    """Serve the webhook until cancelled; its counters go into `registry` when given."""
    server = WebhookServer(
        values, cert_file=cert_file, key_file=key_file, host=host, port=port, registry=registry
    )
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
