"""The demo's layout, computed from the sample's own manifests."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from istiolite.agent.bootstrap import parse_labels_file
from istiolite.api import Service, WorkloadEntry, parse_yaml
from istiolite.demo.topology import (
    SUBNET,
    SampleError,
    hosts_file,
    mesh_manifests,
    plan,
    pod_labels_file,
    read_sample,
)

SAMPLE = Path(__file__).parents[2] / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"
WORKLOADS = ["details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"]


@pytest.fixture(scope="module")
def sample_text() -> str:
    return SAMPLE.read_text()


def test_every_deployment_becomes_a_pod_with_its_own_address(sample_text: str) -> None:
    topology = plan(read_sample(sample_text))
    assert [p.name for p in topology.pods] == WORKLOADS
    addresses = [p.address for p in topology.namespaces()]
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.IPv4Address(a) in SUBNET for a in addresses)
    assert all(
        p.netns.startswith("il-") and p.veth.startswith("il-") for p in topology.namespaces()
    )
    assert all(len(p.veth) <= 15 for p in topology.namespaces()), "IFNAMSIZ"


def test_workloads_keep_labels_account_env_and_probes(sample_text: str) -> None:
    reviews = plan(read_sample(sample_text)).pod("reviews-v2").workload
    assert reviews is not None
    assert dict(reviews.labels) == {"app": "reviews", "version": "v2"}
    assert reviews.service_account == "bookinfo-reviews"
    assert dict(reviews.env) == {"SERVICE": "reviews", "VERSION": "v2"}
    assert reviews.port == 9080
    assert dict(reviews.probers) == {
        "/app-health/reviews/readyz": {
            "httpGet": {"path": "/health", "port": 9080},
            "periodSeconds": 2,
        }
    }


def test_service_names_resolve_to_virtual_ips_in_the_mesh(sample_text: str) -> None:
    topology = plan(read_sample(sample_text))
    pod = topology.pod("productpage-v1")
    hosts = hosts_file(topology, pod)
    reviews = next(s for s in topology.services if s.name == "reviews")
    names = "reviews reviews.default reviews.default.svc reviews.default.svc.cluster.local"
    assert f"{reviews.vip}\t{names}" in hosts
    assert f"{pod.address}\tproductpage-v1" in hosts
    assert not any(
        ipaddress.IPv4Address(s.vip) == ipaddress.IPv4Address(p.address)
        for s in topology.services
        for p in topology.pods
    )


def test_without_the_mesh_names_resolve_to_a_pod(sample_text: str) -> None:
    topology = plan(read_sample(sample_text), mesh=False)
    hosts = hosts_file(topology, topology.pod("productpage-v1"))
    assert f"{topology.pod('reviews-v1').address}\treviews " in hosts
    assert topology.namespaces() == topology.pods, "no pilot-discovery namespace"


def test_discovery_reads_services_with_cluster_ips_and_workload_entries(sample_text: str) -> None:
    sample = read_sample(sample_text)
    topology = plan(sample)
    parsed = parse_yaml(mesh_manifests(sample, topology), source="mesh")
    assert [p.error for p in parsed if p.error] == []
    services = {r.meta.name: r for p in parsed if isinstance(r := p.resource, Service)}
    entries = {r.meta.name: r for p in parsed if isinstance(r := p.resource, WorkloadEntry)}
    assert {n: s.cluster_ip for n, s in services.items()} == {
        s.name: s.vip for s in topology.services
    }
    assert sorted(entries) == sorted(WORKLOADS)
    entry = entries["reviews-v3"]
    assert entry.spec.address == topology.pod("reviews-v3").address
    assert dict(entry.spec.labels) == {"app": "reviews", "version": "v3"}
    assert entry.spec.service_account == "bookinfo-reviews"
    selected = [
        name
        for name, e in entries.items()
        if all(e.spec.labels.get(k) == v for k, v in services["reviews"].selector.items())
    ]
    assert sorted(selected) == ["reviews-v1", "reviews-v2", "reviews-v3"]


def test_labels_file_reads_back_as_the_agent_reads_it() -> None:
    labels = {"app": "reviews", "version": "v2", "quote": 'a "b"'}
    assert parse_labels_file(pod_labels_file(labels)) == labels


def test_a_deployment_without_containers_is_named_in_the_error() -> None:
    broken = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: lonely}
spec: {template: {metadata: {labels: {app: x}}, spec: {containers: []}}}
"""
    with pytest.raises(SampleError, match="Deployment lonely"):
        read_sample(broken)


def test_a_sample_without_deployments_is_refused() -> None:
    with pytest.raises(SampleError, match="no Deployment"):
        read_sample("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
