"""`istiolite kube-inject`: the webhook's mutation, offline (registered by istiolite/cli.py)."""

from __future__ import annotations

from typing import TextIO

import click

from istiolite.discovery.inject.errors import InjectionError
from istiolite.discovery.inject.template import LOG_LEVELS, SidecarValues
from istiolite.discovery.inject.workloads import inject_manifest
from istiolite.sources import SourceError, read_argument

_DEFAULTS = SidecarValues()


@click.command(name="kube-inject")
@click.option(
    "-f",
    "--filename",
    "source",
    required=True,
    help="Manifests to inject: multi-document YAML ('-' reads standard input).",
)
@click.option(
    "-o", "--output", type=click.File("w"), default="-", help="Where to write the result."
)
@click.option("--proxy-image", default=_DEFAULTS.proxy_image, show_default=True)
@click.option("--discovery-address", default=_DEFAULTS.discovery_address, show_default=True)
@click.option(
    "--log-level", type=click.Choice(LOG_LEVELS), default=_DEFAULTS.log_level, show_default=True
)
@click.option(
    "--native-sidecar", is_flag=True, help="The proxy as a restartable init container (1.29+)."
)
@click.option(
    "--hold-application-until-proxy-starts",
    "hold",
    is_flag=True,
    help="Start apps after the proxy.",
)
def kube_inject(
    *,
    source: str,
    output: TextIO,
    proxy_image: str,
    discovery_address: str,
    log_level: str,
    native_sidecar: bool,
    hold: bool,
) -> None:
    """Add the sidecar to Pods and workload templates; other kinds pass through unchanged."""
    values = SidecarValues(
        proxy_image=proxy_image,
        discovery_address=discovery_address,
        log_level=log_level,
        native_sidecar=native_sidecar,
        hold_application_until_proxy_starts=hold,
    )
    name = "<stdin>" if source == "-" else source
    try:
        output.write(inject_manifest(read_argument(source), values))
    except SourceError as e:
        raise click.ClickException(str(e)) from None
    except InjectionError as e:
        raise click.ClickException(f"{name}: {e}") from None
