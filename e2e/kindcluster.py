"""The e2e `Cluster` (cluster.py) on a kind cluster running istiolite and the sample.

Everything goes through kubectl, as a user would: YAML is applied with `kubectl apply`,
requests leave from inside a workload's app container (`kubectl exec -i` of the load client,
which the sample image carries), Envoy is signalled inside the running istio-proxy container,
and pilot-discovery is stopped by scaling istiod to zero. Reading an agent's metrics or
pilot-discovery's /debug goes through the API server's proxy to the pod.

Beyond the protocol it answers what only a real cluster has: container restart counts, pod
readiness as the kubelet sees it, and commands in the node (the pod's network namespace).
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from e2e.kind import NAMESPACE, SAMPLE, wait_sample_ready
from e2e.kubectl import CommandError, Kubectl, run
from istiolite.demo.loadclient import BatchClient, Reply
from istiolite.demo.runtime import proxy_ids
from istiolite.promtext import parse_prometheus
from istiolite.testing.wait import eventually

ISTIO_NAMESPACE = "istio-system"
APPLIED_KINDS = "virtualservices.networking.istio.io,destinationrules.networking.istio.io"
PROXY = "istio-proxy"
STATUS_PORT = 15020
DEBUG_PORT = 8080
# The signal goes to every process named envoy in the istio-proxy container; the container
# has no procps, so /proc is read directly. Prints the pids it signalled.
SIGNAL_ENVOY = (
    'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = envoy ] || continue; '
    'kill -{sig} "${{p#/proc/}}" && echo "${{p#/proc/}}"; done'
)


class KindCluster:
    """The sample on kind, seen through kubectl; `logs` receives the load clients' stderr."""

    def __init__(self, kubectl: Kubectl, *, node: str, logs: Path) -> None:
        self.kubectl, self.node, self.logs = kubectl, node, logs
        self._clients: dict[str, tuple[str, BatchClient]] = {}  # workload -> (pod, client)

    # --- deploying and configuring ------------------------------------------------------------

    def deploy_sample(self) -> object:
        return self.kubectl("apply", "-n", NAMESPACE, "-f", str(SAMPLE))

    def wait_ready(self, *, timeout: float = 300.0) -> None:
        self.kubectl(
            "rollout", "status", "deployment/istiod", "-n", ISTIO_NAMESPACE,
            f"--timeout={timeout:.0f}s", timeout=timeout + 20,
        )  # fmt: skip
        wait_sample_ready(self.kubectl, timeout=timeout)

    def apply(self, config: str | Path) -> list[str]:
        return self._kubectl_f("apply", config)

    def delete(self, config: str | Path) -> list[str]:
        return self._kubectl_f("delete", config, "--ignore-not-found")

    def _kubectl_f(self, verb: str, config: str | Path, *flags: str) -> list[str]:
        text = config.read_text() if isinstance(config, Path) else config
        out = self.kubectl(verb, "-n", NAMESPACE, *flags, "-f", "-", input=text)
        return out.splitlines()

    def reset(self) -> None:
        """No VirtualService or DestinationRule in the namespace, no knobs in any app."""
        self.kubectl("delete", APPLIED_KINDS, "--all", "-n", NAMESPACE, "--ignore-not-found")
        for workload in self.workloads():
            [reply] = self.request(
                workload, "http://127.0.0.1:9080/control", method="POST", body={}
            )
            if not reply.ok:
                raise CommandError(f"{workload}: resetting the knobs failed: {reply}")

    # --- traffic ------------------------------------------------------------------------------

    def request(
        self,
        from_workload: str,
        url: str,
        *,
        n: int = 1,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        body: Any = None,
        concurrency: int = 1,
        timeout: float = 10.0,
    ) -> list[Reply]:
        """`n` requests from the workload's app container, through its sidecar."""
        pod = self.pod(from_workload)
        known = self._clients.get(from_workload)
        if known is None or known[0] != pod or not known[1].running():
            if known is not None:
                known[1].close()
            argv = self.kubectl.argv(
                "exec", "-i", "-n", NAMESPACE, pod, "-c", self.app_container(pod), "--",
                "python3", "-m", "istiolite.demo.loadclient",
            )  # fmt: skip
            client = BatchClient(argv, self.logs / f"{from_workload}.loadclient.log")
            self._clients[from_workload] = (pod, client)
        spec = {"url": url, "n": n, "headers": dict(headers or {}), "method": method}
        spec.update({"body": body, "concurrency": concurrency, "timeout": timeout})
        return self._clients[from_workload][1].batch(spec)

    def close(self) -> None:
        for _, client in self._clients.values():
            client.close()
        self._clients.clear()

    # --- breaking things ----------------------------------------------------------------------

    def kill_envoy(self, workload: str, sig: signal.Signals = signal.SIGKILL) -> list[int]:
        """Signal Envoy inside the running istio-proxy container; returns the pids signalled."""
        out = self.kubectl(
            "exec", "-n", NAMESPACE, self.pod(workload), "-c", PROXY, "--",
            "sh", "-c", SIGNAL_ENVOY.format(sig=sig.name.removeprefix("SIG")),
        )  # fmt: skip
        pids = [int(p) for p in out.split()]
        if not pids:
            raise CommandError(f"{workload}: no Envoy process in its istio-proxy container")
        return pids

    def app_instance(self, workload: str) -> str:
        """The app container's id and restart count: both change if the app restarts."""
        pod = self.pod_object(workload)
        app = self.app_container(pod["metadata"]["name"])
        [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == app]
        name, restarts = pod["metadata"]["name"], status["restartCount"]
        return f"{name} {status.get('containerID')} restarts {restarts}"

    def agent_metrics(self, workload: str) -> dict[str, float]:
        pod = f"/api/v1/namespaces/{NAMESPACE}/pods/{self.pod(workload)}:{STATUS_PORT}"
        return parse_prometheus(self.kubectl.raw(f"{pod}/proxy/stats/prometheus"))

    def stop_discovery(self) -> None:
        self.kubectl("scale", "deployment/istiod", "-n", ISTIO_NAMESPACE, "--replicas=0")
        eventually(
            lambda: (
                not self.kubectl.json("get", "pods", "-n", ISTIO_NAMESPACE, "-l", "app=istiod")[
                    "items"
                ]
                or None
            ),
            what="every istiod pod gone",
            timeout=120,
        )

    def start_discovery(self, *, timeout: float = 120.0) -> None:
        self.kubectl("scale", "deployment/istiod", "-n", ISTIO_NAMESPACE, "--replicas=1")
        self.kubectl(
            "rollout", "status", "deployment/istiod", "-n", ISTIO_NAMESPACE,
            f"--timeout={timeout:.0f}s", timeout=timeout + 20,
        )  # fmt: skip

    def connected_proxies(self) -> list[str]:
        return proxy_ids(json.loads(self.discovery_debug("syncz")))

    # --- what only a real cluster has -----------------------------------------------------------

    def workloads(self) -> list[str]:
        items = self.kubectl.json("get", "deployments", "-n", NAMESPACE)["items"]
        return sorted(d["metadata"]["name"] for d in items)

    def pod_object(self, workload: str) -> dict[str, Any]:
        """The running, not terminating pod of the workload's Deployment (one replica)."""
        selector = ",".join(f"{k}={v}" for k, v in self._selector(workload).items())
        pods = self.kubectl.json("get", "pods", "-n", NAMESPACE, "-l", selector)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        live = [p for p in live if p["status"].get("phase") == "Running"] or live
        if not live:
            raise CommandError(f"{workload}: no pod")
        return max(live, key=lambda p: p["metadata"]["creationTimestamp"])

    def pod(self, workload: str) -> str:
        return str(self.pod_object(workload)["metadata"]["name"])

    def _selector(self, workload: str) -> dict[str, str]:
        deployment = self.kubectl.json("get", "deployment", workload, "-n", NAMESPACE)
        return dict(deployment["spec"]["selector"]["matchLabels"])

    def app_container(self, pod: str) -> str:
        spec = self.kubectl.json("get", "pod", pod, "-n", NAMESPACE)["spec"]
        return str(next(c["name"] for c in spec["containers"] if c["name"] != PROXY))

    def proxy_status(self, workload: str) -> dict[str, Any]:
        """istio-proxy's container status: restartCount, ready, state."""
        pod = self.pod_object(workload)
        statuses = pod["status"].get("containerStatuses", []) + pod["status"].get(
            "initContainerStatuses", []
        )
        return next(s for s in statuses if s["name"] == PROXY)

    def pod_ready(self, workload: str) -> bool:
        conditions = self.pod_object(workload)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def discovery_debug(self, what: str) -> str:
        """pilot-discovery's /debug/WHAT, through the API server's service proxy."""
        path = (
            f"/api/v1/namespaces/{ISTIO_NAMESPACE}/services/istiod:{DEBUG_PORT}/proxy/debug/{what}"
        )
        return self.kubectl.raw(path)

    def in_pod_netns(self, workload: str, *command: str) -> str:
        """Run a command of the node's in the pod's network namespace (as the init container's
        iptables did): what the pod's network really holds, whatever its containers can do."""
        pod = self.pod(workload)
        sandbox = run(["docker", "exec", self.node, "crictl", "pods", "-q", "--name", pod]).split()[
            0
        ]
        info = json.loads(run(["docker", "exec", self.node, "crictl", "inspectp", sandbox]))
        netns = next(
            ns["path"]
            for ns in info["info"]["runtimeSpec"]["linux"]["namespaces"]
            if ns["type"] == "network"
        )
        return run(["docker", "exec", self.node, "nsenter", f"--net={netns}", *command])

    @contextlib.contextmanager
    def watching_readiness(self, workload: str) -> Iterator[list[tuple[float, bool]]]:
        """(time, Ready) for every change of the workload pod's Ready condition meanwhile."""
        seen: list[tuple[float, bool]] = []
        watch = _ReadinessWatch(self.kubectl, self.pod(workload), seen)
        try:
            yield seen
        finally:
            watch.stop()


class _ReadinessWatch:
    """`kubectl get pod -w` in the background, parsing its JSON events for Ready."""

    def __init__(self, kubectl: Kubectl, pod: str, seen: list[tuple[float, bool]]) -> None:
        import subprocess  # noqa: PLC0415
        import threading  # noqa: PLC0415

        argv = kubectl.argv("get", "pod", pod, "-n", NAMESPACE, "-w", "-o", "json")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, args=(seen,), daemon=True)
        self.thread.start()

    def _read(self, seen: list[tuple[float, bool]]) -> None:
        assert self.process.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self.process.stdout:
            buffer += line
            with contextlib.suppress(ValueError):
                pod, end = decoder.raw_decode(buffer.lstrip())
                buffer = buffer.lstrip()[end:]
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in pod["status"].get("conditions", [])
                )
                if not seen or seen[-1][1] != ready:
                    seen.append((time.monotonic(), ready))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()
        self.thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def sample_pods(kubectl: Kubectl) -> Sequence[dict[str, Any]]:
    return kubectl.json("get", "pods", "-n", NAMESPACE)["items"]  # type: ignore[no-any-return]
