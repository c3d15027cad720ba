"""The pilot-discovery command line."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pilot-discovery: watches the mesh and serves Envoy configuration over ADS."""
