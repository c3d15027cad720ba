"""`demo apply` and `delete`: validated Istio YAML, one file per resource (no root needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from istiolite.demo import DemoError, NetnsCluster
from istiolite.demo.state import DemoState, StateStore, topology_to_json
from istiolite.demo.topology import plan, read_sample
from tests.hostile import HOSTILE, make

ROOT = Path(__file__).parents[2]
NETWORKING = ROOT / "samples" / "bookinfo" / "networking"
SAMPLE = ROOT / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NetnsCluster]:
    """A demo's state without its processes: enough for the config directory."""
    store = StateStore(tmp_path / "demo", tmp_path / "lock")
    topology = topology_to_json(plan(read_sample(SAMPLE.read_text())))
    store.save(DemoState(made_by="pytest", sample=str(SAMPLE), topology=topology))
    store.config.mkdir()
    made = NetnsCluster(store=store)
    yield made
    made.close()


def _files(cluster: NetnsCluster) -> list[str]:
    return sorted(p.name for p in cluster.store.config.iterdir())


def test_each_resource_gets_a_file_and_applying_again_replaces_it(cluster: NetnsCluster) -> None:
    assert cluster.apply(NETWORKING / "virtual-service-reviews-80-20.yaml") == [
        "virtualservice/reviews configured"
    ]
    cluster.apply(NETWORKING / "virtual-service-reviews-jason-v2.yaml")
    assert _files(cluster) == ["virtualservice-default-reviews.yaml"]
    assert "jason" in (cluster.store.config / "virtualservice-default-reviews.yaml").read_text()


def test_delete_removes_what_apply_wrote(cluster: NetnsCluster) -> None:
    rules = NETWORKING / "destination-rule-all.yaml"
    assert len(cluster.apply(rules)) == 4
    assert cluster.delete(rules) == [
        "destinationrule/productpage deleted",
        "destinationrule/details deleted",
        "destinationrule/reviews deleted",
        "destinationrule/ratings deleted",
    ]
    assert _files(cluster) == []


def test_invalid_yaml_applies_nothing_and_names_the_field(cluster: NetnsCluster) -> None:
    bad = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fine}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: -5}]}]}
"""
    with pytest.raises(DemoError, match=r"broken.*weight"):
        cluster.apply(bad)
    assert _files(cluster) == []


@pytest.mark.parametrize(
    "name", ["latin1.yaml", "float-tag.yaml", "laughs.yaml", "dev-zero.yaml", "huge.yaml"]
)
def test_a_file_that_cannot_be_read_applies_nothing_and_says_why(
    cluster: NetnsCluster, tmp_path: Path, name: str
) -> None:
    path = make(tmp_path, name)
    says = "32 MiB" if name == "dev-zero.yaml" else HOSTILE[name].says  # read as a pipe is
    with pytest.raises(DemoError, match=re.escape(says)):
        cluster.apply(path)
    assert _files(cluster) == []


def test_workloads_cannot_be_applied(cluster: NetnsCluster) -> None:
    deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: extra}\n"
    with pytest.raises(DemoError, match="only VirtualService, DestinationRule"):
        cluster.apply(deployment)


def test_apply_without_a_running_demo_says_so(tmp_path: Path) -> None:
    cluster = NetnsCluster(store=StateStore(tmp_path, tmp_path / "lock"))
    with pytest.raises(DemoError, match="no demo is running"):
        cluster.apply(NETWORKING / "virtual-service-all-v1.yaml")
    cluster.close()
