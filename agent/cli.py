"""The pilot-agent command line. Subcommands fill a Settings object and hand it to the agent."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pilot-agent: runs beside every Envoy: bootstrap, supervision, status, traffic capture."""
