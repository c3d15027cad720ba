"""The pilot-agent command line. Subcommands fill a Settings object and hand it to the agent.

Options are generated from the settings dataclasses, so every flag has exactly the
environment variable, default and help text declared in `settings.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from istiolite.agent.settings import CaptureSettings, ProxySettings, WaitSettings, info_of

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S")


def settings_options(cls: type[Any]) -> Callable[[F], F]:
    """Add one click option per settings field (flag, env var, default shown, doc)."""

    def decorate(command: F) -> F:
        for field in reversed(dataclasses.fields(cls)):
            info = info_of(field)
            flag = "--" + field.name.replace("_", "-")
            common: dict[str, Any] = {"envvar": info.env, "help": f"{info.doc} [env {info.env}]"}
            if info.is_flag:
                command = click.option(flag, is_flag=True, default=None, **common)(command)
            else:
                shown = info.render(field.default)
                command = click.option(
                    flag, type=str, default=None, show_default=shown or '""', **common
                )(command)
        return command

    return decorate


def build_settings(cls: type[S], values: dict[str, Any]) -> S:
    """Parse the given option texts; fields not given keep their defaults."""
    given: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw = values.get(field.name)
        if raw is None:
            continue
        info = info_of(field)
        try:
            given[field.name] = raw if info.is_flag else info.parse(raw)
        except ValueError as error:
            flag = "--" + field.name.replace("_", "-")
            raise click.BadParameter(str(error), param_hint=f"{flag} / {info.env}") from error
    return cls(**given)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pilot-agent: runs beside every Envoy: bootstrap, supervision, status, traffic capture."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


@main.group()
def proxy() -> None:
    """Run Envoy as a proxy of the given kind."""


@proxy.command()
@settings_options(ProxySettings)
def sidecar(**values: Any) -> None:
    """Render the bootstrap, run and supervise Envoy, serve status on --status-port."""
    from istiolite.agent.sidecar import run_sidecar  # noqa: PLC0415 (keeps `wait` light)

    settings = build_settings(ProxySettings, values)
    asyncio.run(run_sidecar(settings, os.environ))


@main.command()
@settings_options(CaptureSettings)
def iptables(**values: Any) -> None:
    """Install (or with --cleanup remove) the rules that send the pod's traffic through Envoy."""
    from istiolite.agent.capture import apply  # noqa: PLC0415

    settings = build_settings(CaptureSettings, values)
    sys.exit(apply(settings, echo=click.echo))


@main.command()
@settings_options(WaitSettings)
def wait(**values: Any) -> None:
    """Exit 0 once the local proxy is ready; 1 when --timeout passes first."""
    from istiolite.agent.wait import wait_until_ready  # noqa: PLC0415

    settings = build_settings(WaitSettings, values)
    sys.exit(asyncio.run(wait_until_ready(settings, echo=click.echo)))


if __name__ == "__main__":
    main()
