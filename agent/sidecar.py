"""`pilot-agent proxy sidecar`: wire the supervisor, the status server and the signals."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from istiolite.agent.bootstrap import identity_from_env, render_bootstrap, render_json
from istiolite.agent.envoy import Supervisor
from istiolite.agent.probes import APP_PROBERS_ENV, parse_app_probers
from istiolite.agent.settings import ProxySettings
from istiolite.agent.status import status_app

log = logging.getLogger("istiolite.agent")


def bootstrap_renderer(settings: ProxySettings, environ: Mapping[str, str]) -> str:
    """The bootstrap from everything it depends on: settings, environment, the labels file."""
    labels = _read_optional(settings.pod_labels_path)
    return render_json(render_bootstrap(settings, identity_from_env(environ, labels)))


async def run_sidecar(settings: ProxySettings, environ: Mapping[str, str]) -> None:
    """Serve status and supervise Envoy until SIGTERM (drain) or /quitquitquit (at once).

    SIGHUP reloads: Envoy hot-restarts into a new epoch with a freshly rendered bootstrap.
    """
    probes = parse_app_probers(environ.get(APP_PROBERS_ENV, ""))
    supervisor = Supervisor(
        settings, render_bootstrap=functools.partial(bootstrap_renderer, settings, environ)
    )
    runner = web.AppRunner(status_app(supervisor, probes), access_log=None)
    await runner.setup()
    # All interfaces: the kubelet probes the pod's IP, and port 15020 is not captured.
    await web.TCPSite(runner, "0.0.0.0", settings.status_port).start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(
        signal.SIGTERM, functools.partial(supervisor.request_stop, graceful=True)
    )
    loop.add_signal_handler(
        signal.SIGINT, functools.partial(supervisor.request_stop, graceful=False)
    )
    loop.add_signal_handler(signal.SIGHUP, supervisor.request_reload)
    log.info(
        "status server on :%d; discovery at %s", settings.status_port, settings.discovery_address
    )
    try:
        await supervisor.run()
    finally:
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(handled)
        await runner.cleanup()


def _read_optional(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
