"""The pilot-agent command line. Subcommands fill a Settings object and hand it to the agent.

Options are generated from the settings dataclasses, so every flag has exactly the
environment variable, default and help text declared in `settings.py`, and is read and
checked there too (`resolve`): click only collects the flags' texts. A bad value ends the
command with one line per problem on stderr and exit status 2, before anything starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from istiolite.agent.settings import (
    CaptureSettings,
    ProxySettings,
    SettingsError,
    WaitSettings,
    flag_of,
    info_of,
    origins,
    resolve,
)

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", ProxySettings, CaptureSettings, WaitSettings)


def settings_options(cls: type[Any]) -> Callable[[F], F]:
    """Add one click option per settings field (flag, env var and default in its help)."""

    def decorate(command: F) -> F:
        for field in reversed(dataclasses.fields(cls)):
            info = info_of(field)
            # The environment is read by `resolve`, not click: click takes an empty variable
            # for an unset one and words its errors its own way.
            common: dict[str, Any] = {"default": None, "help": f"{info.doc} [env {info.env}]"}
            if info.is_flag:
                command = click.option(flag_of(field), is_flag=True, **common)(command)
            else:
                shown = info.render(field.default)
                command = click.option(
                    flag_of(field), type=str, show_default=shown or '""', **common
                )(command)
        return command

    return decorate


def fail(error: SettingsError) -> NoReturn:
    for line in error.problems:
        click.echo(f"pilot-agent: {line}", err=True)
    sys.exit(2)


def settings_or_exit(cls: type[S], values: dict[str, Any]) -> S:
    try:
        return resolve(cls, values, os.environ)
    except SettingsError as error:
        fail(error)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pilot-agent: runs beside every Envoy: bootstrap, supervision, status, traffic capture."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


@main.group()
def proxy() -> None:
    """Run Envoy as a proxy of the given kind."""


_PROXY_EPILOG = (
    "The pod's identity is read from the environment, as the injector (or the gateway's "
    "Deployment) sets it: POD_NAME, POD_NAMESPACE, INSTANCE_IP (or INSTANCE_IPS), "
    "SERVICE_ACCOUNT, ISTIO_META_<KEY>, ISTIO_METAJSON_<KEY> (a JSON object), "
    "ISTIO_KUBE_APP_PROBERS. Exit status: 0 stopped, 2 a setting cannot be used, 3 Envoy kept "
    "refusing its arguments or bootstrap."
)


@proxy.command(epilog=_PROXY_EPILOG)
@settings_options(ProxySettings)
def sidecar(**values: Any) -> None:
    """Render the bootstrap, run and supervise Envoy, serve status on --status-port."""
    _run_proxy("sidecar", values)


@proxy.command(epilog=_PROXY_EPILOG)
@settings_options(ProxySettings)
def router(**values: Any) -> None:
    """A gateway's proxy: as sidecar, but Envoy binds the ports of the gateway's servers (the
    listeners come from discovery), nothing is captured, and shutdown drains every listener."""
    _run_proxy("router", values)


def _run_proxy(kind: str, values: dict[str, Any]) -> NoReturn:
    # Imported here: `pilot-agent wait` and `iptables` stay light.
    from istiolite.agent.bootstrap import ProxyType  # noqa: PLC0415
    from istiolite.agent.sidecar import prepare, run_sidecar  # noqa: PLC0415

    settings = settings_or_exit(ProxySettings, values)
    named = origins(ProxySettings, values, os.environ)
    try:
        ready = prepare(settings, os.environ, named, proxy_type=ProxyType(kind))
    except SettingsError as error:
        fail(error)
    sys.exit(asyncio.run(run_sidecar(ready)))


@main.command()
@settings_options(CaptureSettings)
def iptables(**values: Any) -> None:
    """Install (or with --cleanup remove) the rules that send the pod's traffic through Envoy."""
    from istiolite.agent.capture import apply  # noqa: PLC0415

    settings = settings_or_exit(CaptureSettings, values)
    sys.exit(apply(settings, echo=click.echo))


@main.command()
@settings_options(WaitSettings)
def wait(**values: Any) -> None:
    """Exit 0 once the local proxy is ready; 1 when --timeout passes first."""
    from istiolite.agent.wait import wait_until_ready  # noqa: PLC0415

    settings = settings_or_exit(WaitSettings, values)
    sys.exit(asyncio.run(wait_until_ready(settings, echo=click.echo)))


if __name__ == "__main__":
    main()
