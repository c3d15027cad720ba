"""The clusters the scenarios run on: the demo's network namespaces (root), or kind.

One cluster per test session: deploying it takes seconds, and every scenario begins with
`cluster.reset()`. Two locks keep things apart on a shared machine: the tests' lock makes
concurrent test sessions take turns, and the demo's own lock (held while the cluster is up)
keeps `istiolite demo` commands off it. A demo a user started by hand is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.kind import BUILD, CACHE
from e2e.kindcluster import KindCluster
from e2e.kubectl import Kubectl
from istiolite.demo import NetnsCluster
from istiolite.demo.state import DemoBusy, StateStore

TESTS_LOCK = Path("/run/istiolite-demo.tests.lock")
LOCK_WAIT = 600.0  # another session's scenarios take a few minutes


class _Session:
    cluster: NetnsCluster | None = None  # the session's cluster while it is up


def session_cluster() -> NetnsCluster | None:
    return _Session.cluster


def require_netns() -> None:
    if os.geteuid() != 0:
        pytest.skip("the netns cluster needs root (network namespaces, veth links, iptables)")
    if not shutil.which("ip") or not shutil.which("iptables"):
        pytest.skip("the netns cluster needs the ip and iptables tools (iproute2, iptables)")


@contextlib.contextmanager
def tests_lock() -> Iterator[None]:
    """Hold the lock test sessions share; fail (not hang) after LOCK_WAIT."""
    try:
        with StateStore(lock_path=TESTS_LOCK).locked(wait=LOCK_WAIT):
            yield
    except DemoBusy as error:
        pytest.fail(f"{error} for more than {LOCK_WAIT:.0f}s")


def refuse_a_users_demo(store: StateStore) -> None:
    existing = store.load()
    if existing is not None and existing.made_by != "pytest" and existing.alive():
        pytest.fail("a demo started by `istiolite demo up` is running: `istiolite demo down` first")


@contextlib.contextmanager
def netns_cluster(*, keep_logs: Path) -> Iterator[NetnsCluster]:
    """The sample in the mesh, deployed and ready; removed (logs kept) afterwards."""
    require_netns()
    store = StateStore()
    with store.locked(wait=30.0):
        refuse_a_users_demo(store)
        cluster = NetnsCluster(store=store, made_by="pytest")
        try:
            cluster.teardown()  # whatever an earlier, crashed test run left
            cluster.deploy_sample()
            cluster.wait_ready()
            _Session.cluster = cluster
            yield cluster
        finally:
            _Session.cluster = None
            # The logs go away with the demo; keep a copy for whoever reads a failure.
            if store.logs.exists():
                shutil.copytree(store.logs, keep_logs, dirs_exist_ok=True)
            cluster.teardown()
            cluster.close()


@contextlib.contextmanager
def kind_cluster(name: str, *, logs: Path) -> Iterator[KindCluster]:
    """A kind cluster `python -m e2e.kind up --name NAME` brought up, sample ready."""
    kubeconfig = BUILD / f"{name}.kubeconfig"
    if not kubeconfig.exists():
        pytest.fail(
            f"no {kubeconfig}: bring the cluster up first (python -m e2e.kind up --name {name})"
        )
    binary = os.environ.get("KUBECTL") or str(CACHE / "kube" / "current" / "bin" / "kubectl")
    cluster = KindCluster(
        Kubectl(Path(binary), kubeconfig), node=f"{name}-control-plane", logs=logs
    )
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()
