"""`istiolite demo up|apply|delete|status|down`: the mesh on one machine (needs root)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from istiolite.demo import DEFAULT_SAMPLE
from istiolite.demo.network import NetworkError
from istiolite.demo.state import DemoBusy, StateStore
from istiolite.demo.topology import SampleError

if TYPE_CHECKING:
    from istiolite.demo.runtime import NetnsCluster

F = TypeVar("F", bound=Callable[..., Any])


def _errors_as_usage(command: F) -> F:
    """The demo's own errors end the command with their message, not a traceback."""

    @functools.wraps(command)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from istiolite.demo.runtime import DemoError  # noqa: PLC0415

        try:
            return command(*args, **kwargs)
        except (DemoError, DemoBusy, NetworkError, SampleError, OSError) as error:
            raise click.ClickException(str(error)) from error

    return wrapped  # type: ignore[return-value]


def _cluster(**options: Any) -> NetnsCluster:
    """The runtime, imported only when a demo command runs (`istiolite --help` stays quick)."""
    from istiolite.demo.runtime import NetnsCluster, require_root  # noqa: PLC0415

    require_root()
    return NetnsCluster(**options)


@click.group()
def demo() -> None:
    """The sample app in a mesh on this machine: network namespaces, sidecars, discovery."""


@demo.command()
@click.option(
    "--sample",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="sample directory (platform/kube/*.yaml, app/)",
)
@click.option("--without-mesh", is_flag=True, help="apps only: no sidecars, no pilot-discovery")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="seconds to wait")
@_errors_as_usage
def up(sample: Path, without_mesh: bool, timeout: float) -> None:
    """Start the sample in network namespaces, with sidecars and pilot-discovery."""
    from istiolite.demo.runtime import HTTP_PORT, DemoError, productpage_url  # noqa: PLC0415

    store = StateStore()
    began = time.monotonic()
    cluster = _cluster(sample=sample, mesh=not without_mesh, store=store, say=click.echo)
    try:
        with store.locked():
            try:
                topology = cluster.up(timeout=timeout)
            except DemoError as error:
                raise DemoError(
                    f"{error}\nthe demo is left as it is for a look (`istiolite demo status`, "
                    f"logs in {store.logs}/); `istiolite demo down` removes it"
                ) from error
    finally:
        cluster.close()
    steps = ", ".join(f"{t.step} {t.seconds:.1f}s" for t in cluster.timings)
    what = "the sample (without the mesh)" if without_mesh else "the mesh"
    click.echo(f"{what} is up in {time.monotonic() - began:.1f}s ({steps})")
    click.echo(f"  productpage:    curl -s {productpage_url(topology)}")
    if not without_mesh:
        click.echo(
            "  change routing: istiolite demo apply -f samples/bookinfo/networking/<file>.yaml"
        )
        address = f"{topology.discovery.address}:{HTTP_PORT}"
        click.echo(f"  proxies:        istiolite proxy-status --discovery-address {address}")
    click.echo(f"  look around:    istiolite demo status; logs in {store.logs}/")
    click.echo("  remove it all:  istiolite demo down")


def _files(help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The `-f FILE` option that apply and delete share."""
    return click.option(
        "-f",
        "--filename",
        "files",
        multiple=True,
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


@demo.command()
@_files("Istio YAML (VirtualService, DestinationRule); repeatable")
@_errors_as_usage
def apply(files: tuple[Path, ...]) -> None:
    """Change routing live: the files go into pilot-discovery's watched directory."""
    _edit(files, delete=False)


@demo.command()
@_files("the YAML that was applied; repeatable")
@_errors_as_usage
def delete(files: tuple[Path, ...]) -> None:
    """Remove routing config that `apply` added."""
    _edit(files, delete=True)


def _edit(files: tuple[Path, ...], *, delete: bool) -> None:
    store = StateStore()
    cluster = _cluster(store=store)
    try:
        with store.locked():
            for file in files:
                done = cluster.delete(file) if delete else cluster.apply(file)
                for line in done:
                    click.echo(line)
    finally:
        cluster.close()


@demo.command()
@_errors_as_usage
def status() -> None:
    """Addresses, processes, readiness, memory and log files of the running demo."""
    cluster = _cluster()
    try:
        for line in cluster.status():
            click.echo(line)
    finally:
        cluster.close()


@demo.command()
@_errors_as_usage
def down() -> None:
    """Remove every namespace, link, rule, process and file of the demo, even after a crash."""
    store = StateStore()
    cluster = _cluster(store=store, say=click.echo)
    try:
        with store.locked(wait=30.0):
            cluster.teardown()
    finally:
        cluster.close()
    click.echo("the demo is down")
