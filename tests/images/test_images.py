"""The container images, proven by what they do, run the way Kubernetes runs them.

pilot-discovery runs as the istiod Deployment asks (install/manifests.py): uid 1337, read-only
root filesystem, no capabilities, its configuration mounted read-only. A sidecar runs as the
injector asks (discovery/inject/template.py): the same restrictions, writable in-memory
/etc/istio/proxy and /var/lib/istio/data, the pod's labels as a read-only file, and its
identity in the environment; it must get ready against that pilot-discovery over a
user-defined Docker network. The init container's `pilot-agent iptables` runs as root with
NET_ADMIN and NET_RAW only, in the container's own network namespace.

The images are built first by tools/build-images.sh (a no-op when nothing changed), so these
tests always see the tree they run in. Without a reachable Docker engine they are skipped,
unless ISTIOLITE_REQUIRE_DOCKER=1 (as CI sets it), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from istiolite import __version__
from istiolite.testing.mesh import acked_all
from istiolite.testing.wait import eventually
from tests.agent.harness import POD_NAME, POD_NAMESPACE, pod_mesh_yaml

ROOT = Path(__file__).parent.parent.parent
HUB = os.environ.get("IMAGE_HUB", "istiolite")
TAG = os.environ.get("IMAGE_TAG", __version__)
PROXY_IMAGE = f"{HUB}/proxy:{TAG}"
PILOT_IMAGE = f"{HUB}/pilot:{TAG}"

# A cold build (base image, then both images from PyPI) takes minutes; later runs seconds.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

# RFC 2544's benchmarking range, clear of the demo's 198.18.0.0/16; the first free one is used.
SUBNETS = ("198.19.42.0/24", "198.19.142.0/24", "198.19.242.0/24")
NAME = f"istiolite-images-test-{os.getpid()}"
CONFIG_DIR = "/etc/istiolite/config"
# Containers run as the manifests run them: never root, nothing writable but volumes.
RESTRICTED = (
    *("--read-only", "--user", "1337:1337", "--cap-drop", "ALL"),
    *("--security-opt", "no-new-privileges"),
)


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    subnet: str

    def address(self, host: int) -> str:
        return self.subnet.rsplit(".", 1)[0] + f".{host}"


@pytest.fixture(scope="module", autouse=True)
def images() -> None:
    missing = None
    if shutil.which("docker") is None:
        missing = "the image tests need the docker command"
    elif docker("version", check=False, timeout=30).returncode != 0:
        missing = "the image tests need a running Docker engine (docker version fails)"
    if missing and os.environ.get("ISTIOLITE_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{missing}, and ISTIOLITE_REQUIRE_DOCKER=1 (CI) says it must run")
    if missing:
        pytest.skip(missing)
    env = {**os.environ, "IMAGE_HUB": HUB, "IMAGE_TAG": TAG}
    done = subprocess.run(
        [ROOT / "tools" / "build-images.sh"], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"tools/build-images.sh exited {done.returncode}:\n{done.stderr[-4000:]}")


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    errors = []
    for subnet in SUBNETS:
        made = docker("network", "create", "--subnet", subnet, NAME, check=False)
        if made.returncode == 0:
            break
        errors.append(made.stderr.strip())
    else:
        pytest.fail(f"no free subnet for the test network: {errors}")
    yield Network(NAME, subnet)
    docker("network", "rm", NAME, check=False)


@dataclass(frozen=True, slots=True)
class Container:
    name: str

    def url(self, port: int, path: str) -> str:
        """`path` on container port `port`, published on the host's loopback."""
        published = docker("port", self.name, f"{port}/tcp").stdout.splitlines()[0]
        return f"http://{published.strip()}{path}"

    def logs(self) -> str:
        done = docker("logs", "--tail", "50", self.name, check=False)
        return done.stdout + done.stderr


@pytest.fixture
def run_detached() -> Iterator[list[str]]:
    """Names of containers to remove after the test, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "--force", name, check=False)


def _mesh_yaml(pod_ip: str) -> str:
    # The agent tests' pod (a Service and a WorkloadEntry), with a VirtualService and a
    # DestinationRule on top.
    return (
        pod_mesh_yaml(pod_ip)
        + f"""\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web, namespace: {POD_NAMESPACE}}}
spec:
  host: web
  subsets: [{{name: v1, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: {POD_NAMESPACE}}}
spec:
  hosts: [web]
  http: [{{route: [{{destination: {{host: web, subset: v1}}}}], timeout: 5s}}]
"""
    )


def _readable_dir(path: Path, files: dict[str, str]) -> Path:
    """A directory uid 1337 can read when mounted (pytest's tmp dirs are 0700 root)."""
    path.mkdir()
    path.chmod(0o755)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    return path


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def _wait_for_200(container: Container, port: int, path: str, limit: float) -> str:
    deadline = time.monotonic() + limit
    status, body = 0, ""
    while time.monotonic() < deadline:
        if docker("inspect", "-f", "{{.State.Running}}", container.name).stdout.strip() != "true":
            pytest.fail(f"{container.name} exited:\n{container.logs()}")
        status, body = _get(container.url(port, path))
        if status == 200:
            return body
        time.sleep(0.25)
    pytest.fail(
        f"{path} on :{port} not 200 after {limit}s ({status} {body!r}):\n{container.logs()}"
    )


def _start_discovery(network: Network, config: Path, names: list[str]) -> Container:
    name = f"{NAME}-istiod"
    names.append(name)
    docker(
        "run", "--detach", "--name", name, "--network", network.name, *RESTRICTED,
        "--volume", f"{config}:{CONFIG_DIR}:ro", "--publish", "127.0.0.1::8080",
        PILOT_IMAGE, "discovery", "--config-dir", CONFIG_DIR,
    )  # fmt: skip
    return Container(name)


def test_both_programs_answer_help_as_the_entrypoint() -> None:
    agent = docker("run", "--rm", *RESTRICTED, PROXY_IMAGE, "--help")
    discovery = docker("run", "--rm", *RESTRICTED, PILOT_IMAGE, "--help")
    assert "Usage: pilot-agent" in agent.stdout
    assert "Usage: pilot-discovery" in discovery.stdout


@pytest.mark.parametrize("image", [PROXY_IMAGE, PILOT_IMAGE])
def test_image_runs_as_the_proxy_uid_by_default(image: str) -> None:
    ids = docker("run", "--rm", "--entrypoint", "id", image).stdout.split()
    assert ids[:2] == ["uid=1337(istio-proxy)", "gid=1337(istio-proxy)"]


def test_iptables_dry_run_prints_the_capture_rules() -> None:
    rules = docker("run", "--rm", *RESTRICTED, PROXY_IMAGE, "iptables", "--dry-run").stdout
    assert rules.startswith("*nat\n")
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert rules.rstrip().endswith("COMMIT")


def test_init_container_installs_the_capture_rules_with_net_admin_only() -> None:
    # As the injected istio-init runs: root, every capability dropped but NET_ADMIN and NET_RAW.
    # The rules land in the container's own network namespace; iptables-save reads them back.
    done = docker(
        "run", "--rm", "--user", "0:0", "--cap-drop", "ALL",
        "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--entrypoint", "sh", PROXY_IMAGE,
        "-c", "pilot-agent iptables --proxy-uid 1337 && iptables-save -t nat",
    )  # fmt: skip
    assert "installed the capture rules" in done.stdout
    assert "-A OUTPUT -p tcp -j ISTIO_OUTPUT" in done.stdout
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in done.stdout


def test_discovery_serves_read_only_as_1337(
    network: Network, tmp_path: Path, run_detached: list[str]
) -> None:
    config = _readable_dir(tmp_path / "config", {"mesh.yaml": _mesh_yaml(network.address(10))})
    discovery = _start_discovery(network, config, run_detached)

    _wait_for_200(discovery, 8080, "/ready", limit=60)

    status, body = _get(discovery.url(8080, "/debug/configz"))
    assert status == 200
    assert "VirtualService" in body, body


def test_sidecar_gets_ready_against_discovery(
    network: Network, tmp_path: Path, run_detached: list[str]
) -> None:
    pod_ip = network.address(10)
    config = _readable_dir(tmp_path / "config", {"mesh.yaml": _mesh_yaml(pod_ip)})
    labels = _readable_dir(tmp_path / "pod", {"labels": 'app="web"\nversion="v1"\n'})
    discovery = _start_discovery(network, config, run_detached)
    _wait_for_200(discovery, 8080, "/ready", limit=60)

    proxy = Container(f"{NAME}-web-1")
    run_detached.append(proxy.name)
    docker(
        "run", "--detach", "--name", proxy.name, "--network", network.name, "--ip", pod_ip,
        *RESTRICTED,
        # The injector's emptyDirs; Docker's tmpfs stands in for them.
        "--tmpfs", "/etc/istio/proxy:uid=1337,gid=1337",
        "--tmpfs", "/var/lib/istio/data:uid=1337,gid=1337",
        "--volume", f"{labels}:/etc/istio/pod:ro",
        "--env", f"POD_NAME={POD_NAME}", "--env", f"POD_NAMESPACE={POD_NAMESPACE}",
        "--env", f"INSTANCE_IP={pod_ip}", "--env", "SERVICE_ACCOUNT=web",
        "--env", "ISTIO_META_CLUSTER_ID=Kubernetes",
        "--publish", "127.0.0.1::15020", "--publish", "127.0.0.1::15021",
        PROXY_IMAGE, "proxy", "sidecar",
        "--discovery-address", f"{NAME}-istiod:15010", "--log-level", "warning",
    )  # fmt: skip

    # Envoy's health listener, which the kubelet probes; it asks the agent on 15020.
    _wait_for_200(proxy, 15021, "/healthz/ready", limit=60)

    status, _ = _get(proxy.url(15020, "/healthz/ready"))
    assert status == 200
    row = _eventually_acked(discovery, f"~{POD_NAME}.{POD_NAMESPACE}~", limit=10)
    assert row["proxy"] == f"sidecar~{pod_ip}~{POD_NAME}.{POD_NAMESPACE}~shop.svc.cluster.local"


def _eventually_acked(discovery: Container, node: str, limit: float) -> dict[str, Any]:
    """The proxy's /debug/syncz row once it has acknowledged every type it was sent."""

    def row() -> dict[str, Any] | None:
        _, body = _get(discovery.url(8080, "/debug/syncz"))
        rows = [r for r in json.loads(body or "{}").get("proxies", []) if node in r["proxy"]]
        return rows[0] if rows and acked_all(rows[0]) else None

    return eventually(row, what=f"{node} to ACK every xDS type", timeout=limit, interval=0.25)


# What `pip check` checks, without pip (the images do not ship it): every requirement the wheel
# declares, extras aside, is installed.
MISSING_REQUIREMENTS = """
import importlib.metadata as metadata, re
missing = []
for requirement in metadata.requires("istiolite") or []:
    if "extra ==" in requirement:
        continue
    name = re.split(r"[ ;<>=!~\\[(]", requirement, maxsplit=1)[0]
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        missing.append(name)
print(" ".join(missing))
"""


@pytest.mark.parametrize("image", [PROXY_IMAGE, PILOT_IMAGE])
def test_every_requirement_of_the_wheel_is_installed(image: str) -> None:
    python = "/opt/istiolite/bin/python"
    done = docker(
        "run", "--rm", *RESTRICTED, "--entrypoint", python, image, "-c", MISSING_REQUIREMENTS
    )
    assert done.stdout.strip() == "", f"missing in {image}: {done.stdout}"
