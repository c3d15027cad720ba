"""The pods of the running mesh look like pods: own address and host name, captured traffic,
Envoy in the proxy's group, and no way out of the demo's subnet."""

from __future__ import annotations

import subprocess

import pytest

from istiolite.demo import NetnsCluster
from istiolite.demo.runtime import productpage_url
from istiolite.demo.state import read_stat
from istiolite.demo.topology import PROXY_UID

pytestmark = [pytest.mark.netns, pytest.mark.envoy]


def _in(netns: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=True
    ).stdout


def test_each_pod_has_one_route_its_name_and_capture_rules(cluster: NetnsCluster) -> None:
    for pod in cluster.topology.pods:
        assert (
            _in(pod.netns, "ip", "-4", "route").split("\n")[0].startswith("198.18.0.0/16 dev eth0")
        )
        assert "default" not in _in(pod.netns, "ip", "route", "show", "table", "all")
        [reply] = cluster.request(pod.name, "http://127.0.0.1:9080/")  # the app, no sidecar hop
        assert reply.json["instance"] == pod.name
        assert "-A OUTPUT -p tcp -j ISTIO_OUTPUT" in _in(pod.netns, "iptables-save", "-t", "nat")


def test_envoy_runs_in_the_proxy_group_and_the_app_does_not(cluster: NetnsCluster) -> None:
    for pod in cluster.topology.pods:
        [envoy] = cluster.envoy_pids(pod.name)
        app = cluster.state.find(pod.name, "app")
        assert app is not None
        assert _gid(envoy) == PROXY_UID and _gid(app.pid) == 0
        assert read_stat(envoy) is not None


def test_services_resolve_to_virtual_ips_that_only_the_sidecar_can_reach(
    cluster: NetnsCluster,
) -> None:
    reviews = next(s for s in cluster.topology.services if s.name == "reviews")
    assert _in("il-productpage-v1", "getent", "hosts", "reviews").split()[0] == reviews.vip
    [reply] = cluster.request(
        "productpage-v1", "http://reviews.default.svc.cluster.local:9080/reviews/1"
    )
    assert reply.ok and reply.json["service"] == "reviews"
    # The host has no sidecar: the virtual IP goes nowhere from here, the pod address works.
    assert productpage_url(cluster.topology).startswith("http://198.18.0.")


def test_status_reports_every_pod_ready_and_the_memory(cluster: NetnsCluster) -> None:
    report = "\n".join(cluster.status())
    assert report.count(" ready") >= 7, report  # pilot-discovery and six pods
    assert "connected proxies: 6" in report
    assert "/envoy" in report and "MB PSS" in report


def _gid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("Gid:"))
    return int(line.split()[1])
