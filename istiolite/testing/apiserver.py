"""A real etcd and kube-apiserver on loopback, for tests and benchmarks.

Like controller-runtime's envtest: no nodes, no kubelet, no cluster; just the API server and
its storage, started from the binaries `make kube-bins` builds. What the mesh talks to is then
the real thing, with its validation, defaulting, watch semantics, RBAC and CRDs, instead of a
fake that agrees with our own assumptions.

The control plane is started synchronously so that a session-scoped pytest fixture does not
need a session-scoped event loop; tests talk to it with any client through the kubeconfig.

Choices, and why:
- Every port is a free loopback port picked at start, so engineers and CI runs on one machine
  do not collide, and nothing listens beyond 127.0.0.1.
- The admin identity is a client certificate in `system:masters`, as in envtest: RBAC stays on
  for everyone else, and lightkube reads the certificate straight from the kubeconfig.
- Service-account tokens are signed with a freshly generated key, so the TokenRequest API and
  a service account's real (unprivileged) identity work.
- Without kube-controller-manager nobody creates a namespace's `default` ServiceAccount or
  finalizes deleted namespaces; the ServiceAccount admission plugin is therefore off unless
  the controllers run, and tests should use fresh namespace names.
- Outages are the real thing: `stop_apiserver()`/`start_apiserver()` restart kube-apiserver
  alone (etcd keeps the data, the address stays); the restarted server's fresh watch cache
  answers watches from older resourceVersions with 410 Gone, as after any restart.
- Each process runs in its own process group and gets SIGTERM, then SIGKILL, on the way out,
  whatever happened; the temporary directory (etcd data, keys, logs) is removed with it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from istiolite import certs

ADMIN_USER = "istiolite-admin"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_STOP_GRACE = 10.0
_POLL = 0.1


class BinariesMissing(RuntimeError):
    """The etcd / kube-apiserver binaries are not where `make kube-bins` puts them."""


@dataclass(frozen=True, slots=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path

    @classmethod
    def find(cls, directory: Path | None = None) -> Binaries:
        """The binaries in `directory`, else $ISTIOLITE_KUBE_BIN, else the kube-bins cache."""
        directory = directory or default_bin_dir()
        found = cls(
            directory / "etcd",
            directory / "kube-apiserver",
            directory / "kube-controller-manager",
        )
        missing = [p.name for p in (found.etcd, found.kube_apiserver) if not os.access(p, os.X_OK)]
        if missing:
            raise BinariesMissing(
                f"{', '.join(missing)} not found in {directory}: run `make kube-bins` "
                "(builds them once from the Go module proxy, ~20 minutes on 2 cores), "
                "or point ISTIOLITE_KUBE_BIN at a directory that has them"
            )
        return found


def default_bin_dir() -> Path:
    if explicit := os.environ.get("ISTIOLITE_KUBE_BIN"):
        return Path(explicit)
    cache = os.environ.get("ISTIOLITE_CACHE") or Path.home() / ".cache" / "istiolite"
    return Path(cache) / "kube" / "current" / "bin"


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """A running control plane; valid inside the `control_plane()` block that yielded it."""

    url: str
    kubeconfig: Path
    workdir: Path
    # Seconds from the first process start until /readyz answered ok.
    startup_seconds: float
    _pki: _Pki
    _apiserver: _Restartable

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS that trusts the server and presents the admin certificate, for raw HTTP calls."""
        return _admin_ssl_context(self._pki)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver, as an outage would; etcd keeps running with the data."""
        self._apiserver.stop()

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same address; return once it is ready."""
        self._apiserver.start()


@contextlib.contextmanager
def control_plane(
    binaries: Binaries | None = None,
    *,
    controllers: bool = False,
    ready_timeout: float = 90.0,
) -> Iterator[ControlPlane]:
    """Start etcd and kube-apiserver (and kube-controller-manager if `controllers`)."""
    binaries = binaries or Binaries.find()
    with (
        tempfile.TemporaryDirectory(prefix="istiolite-kube-") as tmp,
        contextlib.ExitStack() as processes,
    ):
        workdir = Path(tmp)
        started = time.monotonic()
        pki = _write_pki(workdir / "pki")
        etcd_url = processes.enter_context(_etcd(binaries.etcd, workdir, ready_timeout))
        apiserver = processes.enter_context(
            _kube_apiserver(
                binaries.kube_apiserver,
                workdir,
                pki=pki,
                etcd_url=etcd_url,
                service_account_admission=controllers,
                ready_timeout=ready_timeout,
            )
        )
        url = apiserver.url
        kubeconfig = _write_kubeconfig(workdir / "kubeconfig", url=url, pki=pki)
        if controllers:
            processes.enter_context(
                _kube_controller_manager(
                    binaries.kube_controller_manager, workdir, pki=pki, kubeconfig=kubeconfig
                )
            )
        yield ControlPlane(url, kubeconfig, workdir, time.monotonic() - started, pki, apiserver)


# --- processes -------------------------------------------------------------------------


@contextlib.contextmanager
def _etcd(binary: Path, workdir: Path, ready_timeout: float) -> Iterator[str]:
    client, peer = (f"http://127.0.0.1:{port}" for port in _free_ports(2))
    argv = [
        str(binary),
        "--name=default",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        # Test data need not survive a power cut; fsync dominates etcd's write latency.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]
    with _process(argv, log=workdir / "etcd.log") as proc:
        proc.wait_until(lambda: _get(f"{client}/health") == 200, timeout=ready_timeout)
        yield client


@contextlib.contextmanager
def _kube_apiserver(
    binary: Path,
    workdir: Path,
    *,
    pki: _Pki,
    etcd_url: str,
    service_account_admission: bool,
    ready_timeout: float,
) -> Iterator[_Restartable]:
    (port,) = _free_ports(1)
    url = f"https://127.0.0.1:{port}"
    argv = [
        str(binary),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--advertise-address=127.0.0.1",
        # Endpoints may not point at loopback, so the `kubernetes` Service gets none.
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_public_key}",
        f"--service-account-signing-key-file={pki.sa_private_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        "--profiling=false",
    ]
    if not service_account_admission:
        argv.append("--disable-admission-plugins=ServiceAccount")
    context = _admin_ssl_context(pki)
    process = _Restartable(
        argv,
        log=workdir / "kube-apiserver.log",
        url=url,
        ready=lambda: _get(f"{url}/readyz", context=context) == 200,
        ready_timeout=ready_timeout,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def _kube_controller_manager(
    binary: Path, workdir: Path, *, pki: _Pki, kubeconfig: Path
) -> Iterator[None]:
    argv = [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        # No serving port: nothing here asks the controller manager anything.
        "--secure-port=0",
        f"--service-account-private-key-file={pki.sa_private_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--use-service-account-credentials=false",
    ]
    with _process(argv, log=workdir / "kube-controller-manager.log"):
        yield


@dataclass(frozen=True, slots=True)
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def wait_until(self, ready: Callable[[], bool], *, timeout: float) -> None:
        """Poll `ready` until it holds; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}{self._tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s{self._tail()}")
            time.sleep(_POLL)

    def _tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"; last lines of {self.log.name}:\n" + "\n".join(text)


@contextlib.contextmanager
def _process(argv: list[str], *, log: Path) -> Iterator[_Process]:
    process = _spawn(argv, log=log)
    try:
        yield process
    finally:
        _stop(process.popen)


def _spawn(argv: list[str], *, log: Path) -> _Process:
    with log.open("ab") as out:
        # A process group of its own, so stopping it stops anything it forked too.
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return _Process(Path(argv[0]).name, popen, log)


@dataclass(slots=True)
class _Restartable:
    """A server process that can be stopped and started again with the same arguments."""

    argv: list[str]
    log: Path
    url: str
    ready: Callable[[], bool]
    ready_timeout: float
    process: _Process | None = None

    def start(self) -> None:
        if self.process is None:
            self.process = _spawn(self.argv, log=self.log)
            self.process.wait_until(self.ready, timeout=self.ready_timeout)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process.popen)
            self.process = None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=_STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def _get(url: str, *, context: ssl.SSLContext | None = None) -> int:
    # No proxy from the environment: these servers are on loopback.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        e.close()  # an unclosed error response is a ResourceWarning, an error in our tests
        return e.code
    except (OSError, ssl.SSLError):
        return 0


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; held together so that they differ from each other."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


# --- keys and certificates ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_private_key: Path
    sa_public_key: Path


def _write_pki(directory: Path) -> _Pki:
    directory.mkdir(mode=0o700)
    ca = certs.generate_ca("istiolite test kube CA")
    serving = certs.issue_serving_cert(ca, hosts=["localhost", "127.0.0.1"])
    admin = _issue_client_cert(ca, user=ADMIN_USER, groups=["system:masters"])
    sa_key = ec.generate_private_key(ec.SECP256R1())
    pki = _Pki(*(directory / name for name in _PKI_FILES))
    files = {
        pki.ca_cert: ca.cert_pem(),
        pki.serving_cert: serving.cert_pem(),
        pki.serving_key: serving.key_pem(),
        pki.admin_cert: admin.cert_pem(),
        pki.admin_key: admin.key_pem(),
        pki.sa_private_key: sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        pki.sa_public_key: sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for path, data in files.items():
        certs.write_pem(path, data, private=path.name.endswith(".key"))
    return pki


_PKI_FILES = ("ca.crt", "serving.crt", "serving.key", "admin.crt", "admin.key", "sa.key", "sa.pub")


def _issue_client_cert(ca: certs.KeyPair, *, user: str, groups: list[str]) -> certs.KeyPair:
    """Kubernetes reads the user from the CN and the groups from the O attributes."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    start = datetime.now(UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return certs.KeyPair(cert, key)


def _admin_ssl_context(pki: _Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca_cert)
    context.load_cert_chain(pki.admin_cert, pki.admin_key)
    return context


def _write_kubeconfig(path: Path, *, url: str, pki: _Pki) -> Path:
    """A self-contained kubeconfig (data inlined), so it can be copied or read anywhere."""

    def inline(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "istiolite-test",
                "cluster": {"server": url, "certificate-authority-data": inline(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": inline(pki.admin_cert),
                    "client-key-data": inline(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {"name": "istiolite-test", "context": {"cluster": "istiolite-test", "user": ADMIN_USER}}
        ],
        "current-context": "istiolite-test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
