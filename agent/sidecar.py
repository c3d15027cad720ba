"""`pilot-agent proxy sidecar` and `proxy router`: check everything they are given, then wire
the supervisor, the status server and the signals.

`prepare` runs before the event loop and does every check that can fail at start: the pod's
identity in the environment, the app probes, the paths, and the status port (it is bound there,
so a port another process holds is reported like a bad value). `run_sidecar` then cannot fail
on its inputs; it ends when asked to stop, or when Envoy keeps refusing its configuration.

A router (a gateway) is a sidecar in all but two things, as in Istio's pilot-agent: its node
id says `router`, so discovery sends it the listeners of its Gateways, which bind the
gateway's ports (nothing is captured: no iptables for it, ever); and on shutdown every
listener drains, not only the inbound ones. Bootstrap, supervision, readiness and the status
server are the same code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from istiolite.agent.bootstrap import (
    ProxyIdentity,
    ProxyType,
    identity_from_env,
    render_bootstrap,
    render_json,
)
from istiolite.agent.envoy import Supervisor
from istiolite.agent.preflight import read_labels, sidecar_problems
from istiolite.agent.probes import APP_PROBERS_ENV, AppProbe, ProbeConfigError, parse_app_probers
from istiolite.agent.settings import ProxySettings, SettingsError, invalid
from istiolite.agent.status import status_app

log = logging.getLogger("istiolite.agent")

# The agent's exit status when Envoy kept refusing its arguments or bootstrap (2 is a bad
# setting, 1 anything unforeseen).
EXIT_ENVOY_REFUSED = 3
# The kubelet keeps at most this much of a termination message.
_TERMINATION_MESSAGE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Sidecar:
    """Everything the sidecar runs on, checked."""

    settings: ProxySettings
    identity: ProxyIdentity
    labels: Mapping[str, str] | None  # the downward-API file's, when there is one
    probes: Mapping[str, AppProbe]
    status_socket: socket.socket


def prepare(
    settings: ProxySettings,
    environ: Mapping[str, str],
    named: Mapping[str, tuple[str, str]],
    *,
    proxy_type: ProxyType = ProxyType.SIDECAR,
) -> Sidecar:
    """Check what the settings alone cannot, or raise SettingsError with a line per problem.

    `named` says, per settings field, where its value came from and its text (settings.origins).
    """
    problems = [invalid(*named[field], problem) for field, problem in sidecar_problems(settings)]
    try:
        identity = identity_from_env(environ, proxy_type)
    except SettingsError as error:
        problems += error.problems
    try:
        probes = parse_app_probers(environ.get(APP_PROBERS_ENV, ""))
    except ProbeConfigError as error:
        where = str(error).removeprefix(APP_PROBERS_ENV).removeprefix(": ")
        problems.append(invalid(APP_PROBERS_ENV, environ[APP_PROBERS_ENV], where))
    if problems:
        raise SettingsError(problems)
    try:
        # All interfaces: the kubelet probes the pod's IP, and port 15020 is not captured.
        status_socket = socket.create_server(("0.0.0.0", settings.status_port))
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        problem = f"expected a port free to listen on: {reason}"
        raise SettingsError([invalid(*named["status_port"], problem)]) from None
    return Sidecar(settings, identity, read_labels(settings.pod_labels_path), probes, status_socket)


class BootstrapSource:
    """The bootstrap from everything it depends on: settings, identity, the labels file.

    The file is read on every render: the kubelet rewrites it when the pod's labels change. If
    it turns unreadable or malformed later, the labels last read stay (said once in the log):
    the proxy keeps the identity it has rather than stopping over a file it no longer needs.
    """

    def __init__(self, sidecar: Sidecar) -> None:
        self.settings = sidecar.settings
        self.identity = sidecar.identity
        self.labels = sidecar.labels
        self._complaint = ""

    def __call__(self) -> str:
        try:
            self.labels = read_labels(self.settings.pod_labels_path)
        except (OSError, ValueError) as error:
            complaint = f"{self.settings.pod_labels_path}: {error}"
            if complaint != self._complaint:
                log.warning("cannot read the pod's labels (%s); keeping the last", complaint)
            self._complaint = complaint
        identity = self.identity if self.labels is None else self.identity.with_labels(self.labels)
        return render_json(render_bootstrap(self.settings, identity))


async def run_sidecar(sidecar: Sidecar) -> int:
    """Serve status and supervise Envoy until SIGTERM (drain) or /quitquitquit (at once).

    SIGHUP reloads: Envoy hot-restarts into a new epoch with a freshly rendered bootstrap.
    Returns the agent's exit status: 0 when stopped, EXIT_ENVOY_REFUSED when Envoy kept
    refusing its configuration (its error is then the container's termination message).
    """
    settings = sidecar.settings
    supervisor = Supervisor(
        settings,
        render_bootstrap=BootstrapSource(sidecar),
        drain_inbound_only=sidecar.identity.proxy_type is ProxyType.SIDECAR,
    )
    runner = web.AppRunner(status_app(supervisor, sidecar.probes), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sidecar.status_socket).start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(
        signal.SIGTERM, functools.partial(_stop, supervisor, "SIGTERM", graceful=True)
    )
    loop.add_signal_handler(
        signal.SIGINT, functools.partial(_stop, supervisor, "SIGINT", graceful=False)
    )
    loop.add_signal_handler(signal.SIGHUP, supervisor.request_reload)
    log.info(
        "%s: status server on :%d; discovery at %s",
        sidecar.identity.node_id(settings.domain_suffix),
        settings.status_port,
        settings.discovery_address,
    )
    try:
        refused = await supervisor.run()
    finally:
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(handled)
        await runner.cleanup()
    if refused is None:
        log.info("pilot-agent exiting: stopped")
        return 0
    message = supervisor.startup_failures.message()
    write_termination_message(settings.termination_message_path, message)
    log.info("pilot-agent exiting (%d): Envoy refuses its configuration", EXIT_ENVOY_REFUSED)
    return EXIT_ENVOY_REFUSED


def _stop(supervisor: Supervisor, signal_name: str, *, graceful: bool) -> None:
    how = "draining Envoy first" if graceful else "stopping Envoy at once"
    log.info("%s received: %s", signal_name, how)
    supervisor.request_stop(graceful=graceful)


def write_termination_message(path: os.PathLike[str], message: str) -> bool:
    """Write where the kubelet reads why the container ended, if that file is there.

    The kubelet mounts it in every container (terminationMessagePath); elsewhere it does not
    exist and is not created. Only the end of a long message is kept, as the kubelet would.
    """
    data = message.encode()[-_TERMINATION_MESSAGE_LIMIT:]
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC)  # no O_CREAT, on purpose
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
    except OSError:
        return False
    return True
