"""The istiolite command line: install, inspect and validate the mesh."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from istiolite import __version__
from istiolite.analyze import Severity, analyze
from istiolite.api import DEFAULT_DOMAIN_SUFFIX, Parsed, parse_yaml
from istiolite.demo.cli import demo
from istiolite.discovery.inject.cli import kube_inject
from istiolite.install.cli import COMMANDS as INSTALL_COMMANDS
from istiolite.sources import SourceError, read_argument, read_text, scan


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """istiolite: a small, readable, Istio-compatible service mesh."""


@main.command()
def version() -> None:
    """Print the version of istiolite."""
    click.echo(__version__)


main.add_command(kube_inject)
main.add_command(demo)
for command in INSTALL_COMMANDS:
    main.add_command(command)


_discovery_address = click.option(
    "--discovery-address",
    default="localhost:8080",
    show_default=True,
    envvar="ISTIOLITE_DISCOVERY_ADDRESS",
    help="pilot-discovery's HTTP (debug) address, HOST:PORT.",
)


def _debug_page(discovery_address: str, path: str) -> Any:
    """A JSON page of pilot-discovery's debug server; a clear error when it cannot be read."""
    import httpx2  # noqa: PLC0415 - only these commands talk HTTP; keep the others fast

    url = f"http://{discovery_address}{path}"
    try:
        response = httpx2.get(url, timeout=10, verify=False)  # plain http: no CA bundle
    except httpx2.HTTPError as e:
        raise click.ClickException(f"cannot read {url}: {e}") from e
    if response.status_code == 404 and "error" in response.text:
        raise click.ClickException(response.json()["error"])
    if response.status_code != 200:
        raise click.ClickException(f"cannot read {url}: HTTP {response.status_code}")
    return response.json()


@main.command(name="proxy-status")
@_discovery_address
def proxy_status(discovery_address: str) -> None:
    """Show every connected proxy and whether it has the latest configuration."""
    from istiolite import proxystatus  # noqa: PLC0415

    syncz = _debug_page(discovery_address, "/debug/syncz")
    click.echo(proxystatus.format_table(syncz, discovery=discovery_address))
    for line in proxystatus.errors(syncz):
        click.echo(line, err=True)


@main.command(name="proxy-config")
@click.argument("section", type=click.Choice(["clusters", "listeners", "routes", "endpoints"]))
@click.argument("proxy")
@_discovery_address
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def proxy_config(section: str, proxy: str, discovery_address: str, output: str) -> None:
    """Show the SECTION of configuration pilot-discovery sends PROXY (POD.NAMESPACE or node id).

    It is what the proxy is given; `proxy-status` says whether the proxy accepted it.
    """
    from urllib.parse import quote  # noqa: PLC0415

    from istiolite import proxyconfig  # noqa: PLC0415

    dump = _debug_page(discovery_address, f"/debug/config_dump?proxyID={quote(proxy)}")
    if output == "json":
        click.echo(json.dumps(dump.get(section, []), indent=2))
    else:
        click.echo(proxyconfig.format_rows(proxyconfig.rows(section, dump)))


def _read_sources(paths: tuple[str, ...]) -> list[Parsed]:
    """Every document of the files and directories named; a file that cannot be read ends the
    command with one line naming it and why, as analyzing the rest would mislead."""
    parsed: list[Parsed] = []
    try:
        for name in paths:
            if name != "-" and Path(name).is_dir():
                found = scan(Path(name), Path(name))
                if found.unlisted:
                    raise click.ClickException("; ".join(found.unlisted.values()))
                for file in found.files:
                    parsed.extend(parse_yaml(read_text(file), source=str(file)))
            else:
                source = "<stdin>" if name == "-" else name
                parsed.extend(parse_yaml(read_argument(name), source=source))
    except SourceError as e:
        raise click.ClickException(str(e)) from None
    return parsed


@main.command(name="analyze")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="YAML file or directory to analyze (repeatable; '-' reads standard input).",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Analyze every namespace (the default).")
@click.option("-n", "--namespace", default=None, help="Report findings for this namespace only.")
@click.option("--domain-suffix", default=DEFAULT_DOMAIN_SUFFIX, show_default=True)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def analyze_command(
    filenames: tuple[str, ...],
    all_namespaces: bool,
    namespace: str | None,
    domain_suffix: str,
    output: str,
) -> None:
    """Validate Istio YAML and cross-check it; exit 1 when any error is found."""
    if all_namespaces and namespace:
        raise click.UsageError("use either --all-namespaces or --namespace, not both")
    parsed = _read_sources(filenames)
    findings = analyze(parsed, domain_suffix=domain_suffix)
    if namespace:
        findings = [f for f in findings if f.resource.split(" ", 1)[-1].startswith(f"{namespace}/")]
    if output == "json":
        click.echo(json.dumps([asdict(f) for f in findings], indent=2))
    elif findings:
        for f in findings:
            click.echo(str(f))
    else:
        click.echo(f"No validation issues found when analyzing {len(parsed)} resource(s).")
    if any(f.severity is Severity.ERROR for f in findings):
        sys.exit(1)
