"""Injection webhook: AdmissionReview latency through the TLS server, and requests/s on one core.

The server runs in its own process, pinned to one CPU, so requests/s is what one core serves.
The client runs here, pinned to another CPU when there is one, and is a minimal HTTP/1.1 client
over keep-alive TLS connections (as the kube-apiserver keeps them), so that the figures are the
server's, not a client library's. The pod is what the webhook really receives: defaulted by the
API server, with the service-account token volume already added.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from istiolite import certs
from istiolite.discovery.inject import SidecarValues, answer

LATENCY_REQUESTS = 3000
WARMUP_REQUESTS = 300
THROUGHPUT_SECONDS = 5.0
THROUGHPUT_CONNECTIONS = 4


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = cpus[0], cpus[-1]
    body = json.dumps(review(pod())).encode()
    print(f"AdmissionReview: {len(body)} bytes, pod with 2 containers and 3 probes")
    # Other work on the machine shows up in every figure below; say how busy it was.
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    _print_pure_cost(body)
    with tempfile.TemporaryDirectory() as tmp:
        ca_file, cert_file, key_file = _write_certs(Path(tmp))
        spawn = multiprocessing.get_context("spawn")
        ports = spawn.Queue()
        server = spawn.Process(
            target=_serve, args=(cert_file, key_file, server_cpu, ports), daemon=True
        )
        server.start()
        try:
            port = ports.get(timeout=60)
            os.sched_setaffinity(0, {client_cpu})
            print(f"server pinned to cpu {server_cpu}, client to cpu {client_cpu}")
            asyncio.run(_measure(port, ca_file, body, server_pid=server.pid or 0))
        finally:
            os.sched_setaffinity(0, cpus)
            server.terminate()
            server.join()


def _print_pure_cost(body: bytes) -> None:
    values = SidecarValues()
    for _ in range(WARMUP_REQUESTS):
        answer(body, values)
    times = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        answer(body, values)
        times.append(time.perf_counter() - started)
    print(f"answer() in-process (parse, inject, diff, encode): {_percentiles(times)}")


async def _measure(port: int, ca_file: Path, body: bytes, *, server_pid: int) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    request = (
        b"POST /inject HTTP/1.1\r\nHost: istiod.istio-system.svc\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    connection = await Connection.open(port, context)
    for _ in range(WARMUP_REQUESTS):
        await connection.post(request)
    times = [await connection.post(request) for _ in range(LATENCY_REQUESTS)]
    connection.close()
    print(f"latency, one request at a time over TLS: {_percentiles(times)}  (goal: p99 <= 5 ms)")

    connections = [await Connection.open(port, context) for _ in range(THROUGHPUT_CONNECTIONS)]
    deadline = time.perf_counter() + THROUGHPUT_SECONDS
    started, cpu_started = time.perf_counter(), _cpu_seconds(server_pid)
    counts = await asyncio.gather(*(c.post_until(request, deadline) for c in connections))
    elapsed, server_cpu = time.perf_counter() - started, _cpu_seconds(server_pid) - cpu_started
    for c in connections:
        c.close()
    requests = sum(counts)
    print(
        f"throughput, {THROUGHPUT_CONNECTIONS} connections for {THROUGHPUT_SECONDS:g}s: "
        f"{requests / elapsed:,.0f} requests/s on one server core "
        f"(server busy {server_cpu / elapsed:.0%} of it: "
        f"{requests / server_cpu:,.0f} requests per server CPU-second)"
    )


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection:
    """One keep-alive HTTP/1.1 connection over TLS; just enough HTTP for a webhook server.

    Bodies come with a Content-Length (aiohttp) or chunked (Go's net/http, istiod's webhook).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="istiod.istio-system.svc"
        )
        return cls(reader, writer)

    async def post(self, request: bytes) -> float:
        started = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected response: {head!r}")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        if headers.get(b"transfer-encoding") == b"chunked":
            response = await self._chunks()
        else:
            response = await self.reader.readexactly(int(headers[b"content-length"]))
        elapsed = time.perf_counter() - started
        if b'"patch"' not in response:
            raise RuntimeError(f"no patch in response: {response[:200]!r}")
        return elapsed

    async def _chunks(self) -> bytes:
        body = bytearray()
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)  # the CRLF after each chunk
        await self.reader.readuntil(b"\r\n")  # no trailers: the empty line that ends the body
        return bytes(body)

    async def post_until(self, request: bytes, deadline: float) -> int:
        count = 0
        while time.perf_counter() < deadline:
            await self.post(request)
            count += 1
        return count

    def close(self) -> None:
        self.writer.close()


def _serve(cert_file: Path, key_file: Path, cpu: int, ports: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    from istiolite.discovery.inject.webhook import WebhookServer  # noqa: PLC0415

    async def run() -> None:
        server = WebhookServer(
            SidecarValues(), cert_file=cert_file, key_file=key_file, host="127.0.0.1", port=0
        )
        await server.start()
        ports.put(server.port)
        await asyncio.Event().wait()

    asyncio.run(run())


def _write_certs(directory: Path) -> tuple[Path, Path, Path]:
    ca = certs.generate_ca()
    serving = certs.issue_serving_cert(ca, hosts=["istiod.istio-system.svc", "127.0.0.1"])
    paths = directory / "ca.pem", directory / "tls.crt", directory / "tls.key"
    certs.write_pem(paths[0], ca.cert_pem())
    certs.write_pem(paths[1], serving.cert_pem())
    certs.write_pem(paths[2], serving.key_pem(), private=True)
    return paths


def _percentiles(seconds: list[float]) -> str:
    ms = sorted(t * 1000 for t in seconds)
    cuts = statistics.quantiles(ms, n=100)
    return f"min {ms[0]:.2f} ms, p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {ms[-1]:.2f} ms"


def review(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0f3c6d2e-6c1a-4a59-9a43-2f1b7f0f4e11",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "bookinfo",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "5d7c1f0e-2f55-4b8e-9f0a-8e6f3c1d2b4a",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def _container(name: str, image: str, port: int, **probes: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "LOG_DIR", "value": "/tmp/logs"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {
                "name": "kube-api-access-8w2kq",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
        ],
        **probes,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"runAsUser": 1000},
    }


def pod() -> dict[str, Any]:
    probe_timing = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1}

    def http_probe() -> dict[str, Any]:
        return {"httpGet": {"path": "/health", "port": "http", "scheme": "HTTP"}, **probe_timing}

    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "reviews-v2-5b9d7c8f6d-",
            "namespace": "bookinfo",
            "labels": {"app": "reviews", "version": "v2", "pod-template-hash": "5b9d7c8f6d"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "reviews-v2-5b9d7c8f6d",
                    "uid": "b1f0c2d4-9e8a-4c6b-a1d2-3e4f5a6b7c8d",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {
                    "name": "kube-api-access-8w2kq",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
            ],
            "containers": [
                _container(
                    "reviews",
                    "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2",
                    9080,
                    readinessProbe=http_probe(),
                    livenessProbe=http_probe(),
                ),
                _container(
                    "cache",
                    "redis:7.2",
                    6379,
                    readinessProbe={"tcpSocket": {"port": 6379}, **probe_timing},
                ),
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "bookinfo-reviews",
            "serviceAccount": "bookinfo-reviews",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {},
    }
