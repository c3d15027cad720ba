"""The istiolite command line: install, inspect and validate the mesh."""

import click

from istiolite import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """istiolite: a small, readable, Istio-compatible service mesh."""


@main.command()
def version() -> None:
    """Print the version of istiolite."""
    click.echo(__version__)
