"""What only a real cluster can show: the pieces that meet a kubelet and a real API server.

The scenarios (test_scenarios.py) prove routing and healing on any cluster; these check, on
kind, what the netns demo can only imitate: the webhook called by the API server on pod
creation, the init container's rules in the pod's network namespace, probes rewritten to the
agent and answered through it, the native-sidecar variant, and an Envoy killed or hung inside
a running istio-proxy container without the container restarting. Skipped on other clusters.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest
import yaml

from e2e.cluster import Cluster, metric_total
from e2e.figures import report
from e2e.kind import NAMESPACE
from e2e.kindcluster import KindCluster
from istiolite.testing.wait import eventually

RESTARTS = "istio_agent_envoy_restarts_total"
PROBED = "probed-v1"  # a Deployment of the sample's image made here, with fast probes
# The proxy's readiness as Istio's annotations tune it: checked every second, out at the first
# failure, so the kubelet sees what the agent reports.
FAST_READINESS = {
    "readiness.status.sidecar.istio.io/periodSeconds": "1",
    "readiness.status.sidecar.istio.io/failureThreshold": "1",
}


@pytest.fixture(scope="module")
def kind(cluster: Cluster) -> KindCluster:
    if not isinstance(cluster, KindCluster):
        pytest.skip("kind only: run with --kind NAME (make e2e)")
    return cluster


def probed_deployment(*, native: bool = False) -> str:
    """details served by the sample image, probed every second on a path its knobs can fail."""
    name = "probed-native-v1" if native else PROBED
    annotations = {**FAST_READINESS, "sidecar.istio.io/nativeSidecar": str(native).lower()}
    container = {
        "name": "details",
        "image": "istiolite/bookinfo:latest",
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "SERVICE", "value": "details"}],
        "ports": [{"containerPort": 9080}],
        "readinessProbe": {
            "httpGet": {"path": "/details/1", "port": 9080},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    app = name.removesuffix("-v1")
    labels = {"app": app, "version": "v1"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 9080}]},
    }
    return yaml.safe_dump_all([service, deployment])


@pytest.fixture(scope="module")
def probed(kind: KindCluster) -> Iterator[str]:
    manifest = probed_deployment()
    kind.apply(manifest)
    kind.kubectl("rollout", "status", f"deployment/{PROBED}", "-n", NAMESPACE, "--timeout=180s")
    yield PROBED
    kind.delete(manifest)


def _env(container: dict[str, object]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}  # type: ignore[attr-defined]


def test_the_api_server_had_every_sample_pod_injected(kind: KindCluster) -> None:
    for workload in kind.workloads():
        pod = kind.pod_object(workload)
        spec, status = pod["spec"], pod["status"]
        names = [c["name"] for c in spec["containers"]]
        assert "istio-proxy" in names, f"{workload}: not injected: {names}"
        injected = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
        assert "istio-proxy" in injected["containers"]
        [init] = [s for s in status["initContainerStatuses"] if s["name"] == "istio-init"]
        assert init["state"]["terminated"]["exitCode"] == 0, f"{workload}: {init}"
        # The app's readiness probe now asks the agent, which asks the app.
        [app] = [c for c in spec["containers"] if c["name"] != "istio-proxy"]
        probe = app["readinessProbe"]["httpGet"]
        assert probe["port"] == 15020, f"{workload}: probe not rewritten: {probe}"
        assert probe["path"] == f"/app-health/{app['name']}/readyz"


def test_the_init_container_installed_the_capture_rules_in_the_pods_network(
    kind: KindCluster,
) -> None:
    rules = kind.in_pod_netns("productpage-v1", "iptables-save", "-t", "nat")
    assert "--to-ports 15001" in rules, rules  # outbound into Envoy
    assert "--to-ports 15006" in rules, rules  # inbound into Envoy
    assert "--uid-owner 1337" in rules, rules  # Envoy's own traffic left alone
    # And traffic takes that way: the answer carries the headers Envoy adds.
    [reply] = kind.request("productpage-v1", "http://details:9080/details/1")
    assert reply.ok and "x-envoy-upstream-service-time" in reply.headers, reply


def test_an_apps_readiness_is_answered_through_the_agent(kind: KindCluster, probed: str) -> None:
    assert kind.pod_ready(probed)
    control = "http://127.0.0.1:9080/control"
    [failing] = kind.request(probed, control, method="POST", body={"fail_status": 503})
    assert failing.ok
    try:
        eventually(lambda: not kind.pod_ready(probed) or None, what="the pod out of Ready")
    finally:
        [reset] = kind.request(probed, control, method="POST", body={})
    assert reset.ok
    eventually(lambda: kind.pod_ready(probed) or None, what="the pod Ready again")
    assert kind.proxy_status(probed)["restartCount"] == 0


def _heal(kind: KindCluster, workload: str, sig: signal.Signals) -> tuple[float, list[bool]]:
    """Signal Envoy in the running istio-proxy; returns the seconds until the workload serves
    calls again and the pod's Ready changes the kubelet reported until it was Ready again."""
    url = f"http://{workload.removesuffix('-v1')}:9080/details/1"
    [before] = kind.request("details-v1", url)  # the caller's load client is running
    assert before.ok, before
    with kind.watching_readiness(workload) as readiness:
        kind.kill_envoy(workload, sig)  # returns once the signal is sent
        began = time.monotonic()
        eventually(
            lambda: kind.request("details-v1", url, timeout=2)[0].ok or None,
            what=f"{workload} serving again",
            timeout=60,
            interval=0.02,
        )
        serving = time.monotonic() - began
        eventually(
            lambda: (readiness and readiness[-1][1] and kind.pod_ready(workload)) or None,
            what=f"{workload} Ready again",
            timeout=60,
        )
    return serving, [ready for _, ready in readiness]


def test_envoy_killed_or_hung_in_a_running_container_is_healed_in_place(
    kind: KindCluster, probed: str
) -> None:
    before = kind.agent_metrics(probed)
    proxy_container = kind.proxy_status(probed)
    app = kind.app_instance(probed)

    killed_in, killed_readiness = _heal(kind, probed, signal.SIGKILL)
    hung_in, hung_readiness = _heal(kind, probed, signal.SIGSTOP)

    after = kind.proxy_status(probed)
    assert after["restartCount"] == proxy_container["restartCount"], after
    assert after["containerID"] == proxy_container["containerID"], "the container was replaced"
    assert kind.app_instance(probed) == app, "the app must keep running"
    metrics = kind.agent_metrics(probed)
    assert metric_total(metrics, RESTARTS) == metric_total(before, RESTARTS) + 2
    # A hang takes seconds to tell from slowness; meanwhile the proxy reports not ready, and
    # with a probe every second the kubelet takes the pod out of its Services.
    assert False in hung_readiness and hung_readiness[-1] is True, hung_readiness
    report(
        "Envoy healed in place (kind)",
        f"SIGKILL: serving again after {killed_in:.2f} s, Ready changes {killed_readiness}; "
        f"SIGSTOP: after {hung_in:.2f} s, Ready changes {hung_readiness}; "
        f"istio-proxy restartCount stayed {after['restartCount']}",
    )


def test_native_sidecar_pods_get_the_proxy_as_a_restartable_init_container(
    kind: KindCluster,
) -> None:
    manifest = probed_deployment(native=True)
    kind.apply(manifest)
    try:
        kind.kubectl(
            "rollout", "status", "deployment/probed-native-v1", "-n", NAMESPACE, "--timeout=180s",
            timeout=200,
        )  # fmt: skip
        spec = kind.pod_object("probed-native-v1")["spec"]
        inits = {c["name"]: c for c in spec["initContainers"]}
        assert list(inits) == ["istio-init", "istio-proxy"], list(inits)
        assert inits["istio-proxy"]["restartPolicy"] == "Always"
        assert [c["name"] for c in spec["containers"]] == ["details"]
        # Served through its sidecar, from another pod's sidecar.
        [reply] = kind.request("details-v1", "http://probed-native:9080/details/1")
        assert reply.ok and "x-envoy-upstream-service-time" in reply.headers, reply
    finally:
        kind.delete(manifest)
