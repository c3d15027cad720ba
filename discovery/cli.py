"""The pilot-discovery command line: fills Settings and starts the server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from istiolite.discovery.settings import Settings, describe


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pilot-discovery: watches the mesh and serves Envoy configuration over ADS."""


@main.command()
@click.option(
    "--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), **describe("kubeconfig")
)
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    **describe("config_dir"),
)
@click.option("--grpc-addr", **describe("grpc_addr"))
@click.option("--http-addr", **describe("http_addr"))
@click.option("--monitoring-addr", **describe("monitoring_addr"))
@click.option("--webhook-addr", **describe("webhook_addr"))
@click.option(
    "--webhook-cert", type=click.Path(path_type=Path, dir_okay=False), **describe("webhook_cert")
)
@click.option(
    "--webhook-key", type=click.Path(path_type=Path, dir_okay=False), **describe("webhook_key")
)
@click.option("--domain-suffix", **describe("domain_suffix"))
@click.option("--root-namespace", **describe("root_namespace"))
@click.option("--proxy-image", **describe("proxy_image"))
@click.option(
    "--proxy-image-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    **describe("proxy_image_pull_policy"),
)
@click.option("--sidecar-discovery-address", **describe("sidecar_discovery_address"))
@click.option("--native-sidecar/--no-native-sidecar", **describe("native_sidecar"))
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="PILOT_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def discovery(log_level: str, **options: object) -> None:
    """Serve xDS to Envoys from a directory of YAML (--config-dir) or a cluster."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Imported here so `--help` stays fast: the server pulls in grpc and every Envoy message.
    from istiolite.discovery.server import serve  # noqa: PLC0415

    asyncio.run(serve(Settings(**options)))  # type: ignore[arg-type]
