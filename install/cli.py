"""`istiolite install | uninstall | verify-install`: click fills in the options, nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from istiolite.api.duration import DurationError, parse_duration
from istiolite.install import installer, manifests, values, webhookcerts
from istiolite.install.cluster import Cluster, InstallError

kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="kubeconfig of the cluster [default: $KUBECONFIG, else ~/.kube/config, else in-cluster]",
)


def _keys_help() -> str:
    accepted = values.accepted()
    width = max(len(key) for key, _, _ in accepted) + 2
    rows = [f"  {key:<{width}}{doc} [default: {default}]" for key, doc, default in accepted]
    return "\b\nValues for --set KEY=VALUE:\n" + "\n".join(rows)


def _duration(_: click.Context, param: click.Parameter, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DurationError as e:
        raise click.BadParameter(str(e), param=param) from None


@contextmanager
def _cluster(kubeconfig: Path | None) -> Iterator[Cluster]:
    try:
        cluster = Cluster.connect(kubeconfig)
        try:
            yield cluster
        finally:
            cluster.close()
    except InstallError as e:
        raise click.ClickException(str(e)) from None


@click.command(epilog=_keys_help())
@kubeconfig_option
@click.option("--dry-run", is_flag=True, help="Print the manifests as YAML; touch nothing.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a value (repeatable).")
@click.option(
    "--wait", is_flag=True, help="Wait until the rollouts of istiod and the gateway are complete."
)
@click.option(
    "--timeout",
    default="5m",
    show_default=True,
    metavar="DURATION",
    callback=_duration,
    help="How long --wait waits.",
)
@click.option("--force", is_flag=True, help="Take over fields another field manager owns.")
def install(
    *,
    kubeconfig: Path | None,
    dry_run: bool,
    sets: tuple[str, ...],
    wait: bool,
    timeout: timedelta,
    force: bool,
) -> None:
    """Install the control plane (istiod in istio-system, the CRDs, the injection webhook) and
    the ingress gateway istio-system/istio-ingressgateway.

    Installing again keeps the webhook's certificate (renewing it from the same CA when it
    nears expiry) and changes only what differs.
    """
    try:
        chosen = values.from_sets(sets)
    except values.BadValue as e:
        raise click.UsageError(str(e)) from None
    now = datetime.now(UTC)
    if dry_run:
        # No cluster to keep a certificate from: a fresh one makes the output applicable as is.
        objects = manifests.render(chosen, webhookcerts.issue(now=now))
        click.echo(manifests.to_yaml(objects), nl=False)
        return
    with _cluster(kubeconfig) as cluster:
        installer.install(
            cluster, chosen, now=now, echo=click.echo, force=force, wait=timeout if wait else None
        )


@click.command()
@kubeconfig_option
@click.option(
    "--purge",
    is_flag=True,
    help="Also delete the CRDs, and with them every VirtualService, DestinationRule, Sidecar, "
    "Gateway and ServiceEntry in the cluster.",
)
def uninstall(kubeconfig: Path | None, purge: bool) -> None:
    """Delete what install created, the ingress gateway included. Keeps the CRDs (and so the
    users' Istio configuration) unless --purge, and the istio-system namespace, which may hold
    other things: `kubectl delete namespace istio-system` removes it."""
    with _cluster(kubeconfig) as cluster:
        installer.uninstall(cluster, echo=click.echo, purge=purge)


@click.command(name="verify-install")
@kubeconfig_option
def verify_install(kubeconfig: Path | None) -> None:
    """Check every installed object, the webhook's certificate and the availability of istiod
    and the ingress gateway (when install ran it); exit 1 naming what failed."""
    with _cluster(kubeconfig) as cluster:
        checks = installer.verify(cluster, now=datetime.now(UTC))
    for check in checks:
        click.echo(check.line())
    failed = [c.what for c in checks if c.problem is not None]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(checks)} checks failed: {'; '.join(failed)}"
        )
    click.echo(f"all {len(checks)} checks passed")


COMMANDS: tuple[click.Command, ...] = (install, uninstall, verify_install)
