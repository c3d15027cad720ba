"""The agent's status server (15020): readiness, the app's rewritten probes, metrics, and
the two lifecycle hooks (/quitquitquit, /drain).

Readiness is computed on every request, not cached: the answer comes from the supervisor
(is Envoy running at all?) and a fresh look at Envoy's admin API (LIVE? LDS and CDS in?),
so it is never staler than the request itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from istiolite.agent.envoy import Supervisor
from istiolite.agent.probes import AppProbe, run_probe

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def status_app(supervisor: Supervisor, probes: Mapping[str, AppProbe]) -> web.Application:
    app = web.Application()
    handlers = _Handlers(supervisor, probes)
    app.router.add_get("/healthz/ready", handlers.ready)
    app.router.add_get("/app-health/{container}/{kind}", handlers.app_health)
    app.router.add_get("/stats/prometheus", handlers.prometheus)
    app.router.add_post("/quitquitquit", handlers.quit)
    app.router.add_post("/drain", handlers.drain)
    return app


class _Handlers:
    def __init__(self, supervisor: Supervisor, probes: Mapping[str, AppProbe]) -> None:
        self.supervisor = supervisor
        self.probes = probes

    async def ready(self, request: web.Request) -> web.Response:
        readiness = await self.supervisor.readiness()
        return web.Response(status=200 if readiness.ready else 503, text=readiness.text() + "\n")

    async def app_health(self, request: web.Request) -> web.Response:
        probe = self.probes.get(request.path)
        if probe is None:
            known = ", ".join(sorted(self.probes)) or "none"
            return web.Response(status=404, text=f"no app probe at {request.path}; have: {known}\n")
        result = await run_probe(probe)
        return web.Response(status=200 if result.ok else 503, text=result.detail + "\n")

    async def prometheus(self, request: web.Request) -> web.Response:
        envoy = await self.supervisor.admin.prometheus()
        body = self.supervisor.metrics.render() + envoy
        return web.Response(body=body.encode(), headers={"Content-Type": _PROMETHEUS_TEXT})

    async def quit(self, request: web.Request) -> web.Response:
        self.supervisor.request_stop(graceful=False)
        return web.Response(text="stopping\n")

    async def drain(self, request: web.Request) -> web.Response:
        if await self.supervisor.drain():
            drained = "inbound listeners" if self.supervisor.drain_inbound_only else "listeners"
            return web.Response(text=f"draining {drained}\n")
        return web.Response(status=503, text="Envoy did not accept the drain request\n")
