"""istiolite on a kind cluster: `make kind-up`, `make kind-down`, and the cluster of `make e2e`.

    python -m e2e.kind up   [--name istiolite] [--host-port 9080]
    python -m e2e.kind down [--name istiolite]
    python -m e2e.kind e2e  [PYTEST ARGS ...]      (a throw-away cluster, the scenarios, logs)

`up` brings a cluster to this state, doing only what is missing: a one-node kind cluster with
a pod network, istiolite installed by `istiolite install --wait`, the `default` namespace
labelled `istio-injection=enabled` and the bookinfo sample deployed, every pod injected and
ready 2/2. Images are loaded with `kind load docker-image` (no registry); an image that changed
since the last run is loaded again and the Deployments that run it are restarted.

Without a registry (this project's CI) the kind CLI and the node image are built here by
tools/kind-node-image.sh; with one, KIND_NODE_IMAGE=kindest/node:v1.37.0 uses kind's own.
docs/e2e.md has what each step costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from e2e.kubectl import CommandError, Kind, Kubectl, run
from istiolite import __version__
from istiolite.testing.wait import eventually

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"
BUILD = ROOT / "build" / "kind"
CACHE = Path(os.environ.get("ISTIOLITE_CACHE", Path.home() / ".cache" / "istiolite"))
NAMESPACE = "default"
PRODUCTPAGE_NODE_PORT = 30080
PROXY_IMAGE, PILOT_IMAGE = f"istiolite/proxy:{__version__}", f"istiolite/pilot:{__version__}"
SAMPLE_IMAGE = "istiolite/bookinfo:latest"
CNI_FILE = "/etc/cni/net.d/10-istiolite.conflist"
# CAP_SYS_RESOURCE: where root lacks it, runc in the node cannot lower oom_score_adj below 0
# and every pod sandbox fails (docs/e2e.md, "hosts without CAP_SYS_RESOURCE").
CAP_SYS_RESOURCE = 24

Say = Callable[[str], None]


class KindError(RuntimeError):
    """A step of bringing the cluster up failed; the message says which and why."""


# --- what the cluster is made of (pure) ------------------------------------------------------


def kind_config(*, host_port: int | None, restrict_oom_score_adj: bool) -> str:
    """kind's cluster config: one node, no default CNI, Kubernetes >= 1.35 on cgroup v1 too.

    kindnetd, kind's CNI, is not in the Go module proxy, so the pod network is a ptp CNI
    config written after creation (`cni_config`). `failCgroupV1: false` and the skipped
    SystemVerification preflight let the kubelet run on hosts still on cgroup v1.
    """
    node: dict[str, object] = {"role": "control-plane"}
    if host_port is not None:
        node["extraPortMappings"] = [
            {
                "containerPort": PRODUCTPAGE_NODE_PORT,
                "hostPort": host_port,
                "listenAddress": "127.0.0.1",
                "protocol": "TCP",
            }
        ]
    preflight = {"nodeRegistration": {"ignorePreflightErrors": ["SystemVerification"]}}
    patches = [
        {"kind": "InitConfiguration", **preflight},
        {"kind": "JoinConfiguration", **preflight},
        {"kind": "KubeletConfiguration", "failCgroupV1": False},
    ]
    config: dict[str, object] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"disableDefaultCNI": True},
        "nodes": [node],
        "kubeadmConfigPatches": [yaml.safe_dump(p, sort_keys=False) for p in patches],
    }
    if restrict_oom_score_adj:
        config["containerdConfigPatches"] = [
            '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n'
        ]
    return yaml.safe_dump(config, sort_keys=False)


def cni_config(pod_cidr: str) -> str:
    """A point-to-point pod network for one node (the plugins both kind images carry)."""
    ptp = {
        "type": "ptp",
        "ipMasq": True,
        "mtu": 1500,
        "ipam": {
            "type": "host-local",
            "dataDir": "/run/cni-ipam-state",
            "ranges": [[{"subnet": pod_cidr}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    return json.dumps({"cniVersion": "0.4.0", "name": "istiolite", "plugins": [ptp, portmap]})


def productpage_node_port() -> str:
    """A NodePort Service for productpage: what kind's port mapping reaches from the host."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "productpage-nodeport", "namespace": NAMESPACE},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "productpage"},
            "ports": [
                {"name": "http", "port": 9080, "targetPort": 9080},
            ],
        },
    }
    service["spec"]["ports"][0]["nodePort"] = PRODUCTPAGE_NODE_PORT  # type: ignore[index]
    return yaml.safe_dump(service, sort_keys=False)


def lacks_capability(bit: int, status: str) -> bool:
    """Whether /proc/self/status's bounding set lacks capability `bit`."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            return not int(line.split()[1], 16) >> bit & 1
    return False


def user_kubeconfig(env: Mapping[str, str]) -> Path:
    """The kubeconfig kind writes a new cluster's context into, as kubectl would pick it."""
    first = env.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


# --- the machine's tools ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tools:
    kind: Kind
    kubectl_binary: Path
    node_image: str


def find_tools(env: Mapping[str, str], say: Say) -> Tools:
    """kind, kubectl and the node image: given in the environment, else built here (cached)."""
    node_image = env.get("KIND_NODE_IMAGE", "")
    with _step(say, "kind CLI and node image (tools/kind-node-image.sh; cached)"):
        if node_image:
            kind = Path(_tool_output(["tools/kind-node-image.sh", "kind"])[-1])
        else:
            kind, node_image = _tool_output(["tools/kind-node-image.sh"])[-2:]  # type: ignore[assignment]
            kind = Path(kind)
    kubectl = env.get("KUBECTL", "")
    if not kubectl:
        with _step(say, "kubectl (tools/kube-bins.sh; cached)"):
            kubectl = str(Path(_tool_output(["tools/kube-bins.sh"])[-1]) / "kubectl")
    return Tools(
        kind=Kind(Path(env.get("KIND", kind))), kubectl_binary=Path(kubectl), node_image=node_image
    )


def _tool_output(argv: Sequence[str]) -> list[str]:
    """Run a tools/ script (its progress goes to our stderr); its stdout lines."""
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise KindError(f"{' '.join(argv)} failed (exit {done.returncode}); its output is above")
    return done.stdout.split()


@contextmanager
def _step(say: Say, what: str) -> Iterator[None]:
    began = time.monotonic()
    say(f"{what} ...")
    yield
    say(f"{what}: done in {time.monotonic() - began:.1f} s")


# --- bringing a cluster up -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    name: str
    host_port: int | None  # productpage on 127.0.0.1:PORT; None: no port mapping
    user_kubeconfig: Path  # where kind writes the cluster's context for the user


class KindUp:
    """The steps of `up`, each idempotent, over one cluster."""

    def __init__(self, tools: Tools, options: Options, say: Say) -> None:
        self.tools, self.options, self.say = tools, options, say
        self.node = f"{options.name}-control-plane"
        self.kubeconfig = BUILD / f"{options.name}.kubeconfig"
        self.kubectl = Kubectl(tools.kubectl_binary, self.kubeconfig)

    def run(self) -> Kubectl:
        total = time.monotonic()
        self.check_images()
        with _step(self.say, "host check (tools/kind-host.sh)"):
            run([ROOT / "tools" / "kind-host.sh", self.tools.node_image], timeout=120)
        created = self.create_cluster()
        self.pod_network()
        changed = self.load_images()
        self.install(restart=not created and PILOT_IMAGE in changed)
        self.deploy_sample(restart=not created and bool({PROXY_IMAGE, SAMPLE_IMAGE} & changed))
        self.say(f"cluster {self.options.name} ready in {time.monotonic() - total:.1f} s")
        return self.kubectl

    def check_images(self) -> None:
        missing = [i for i in (PROXY_IMAGE, PILOT_IMAGE, SAMPLE_IMAGE) if not _docker_id(i)]
        if missing:
            raise KindError(
                f"no image {', '.join(missing)} in the Docker engine: run `make images`"
            )

    def create_cluster(self) -> bool:
        BUILD.mkdir(parents=True, exist_ok=True)
        kind = self.tools.kind
        created = self.options.name not in kind.clusters()
        if created:
            status = Path("/proc/self/status").read_text()
            config = kind_config(
                host_port=self.options.host_port,
                restrict_oom_score_adj=lacks_capability(CAP_SYS_RESOURCE, status),
            )
            config_file = BUILD / f"{self.options.name}.kind.yaml"
            config_file.write_text(config)
            with _step(
                self.say, f"kind create cluster {self.options.name} ({self.tools.node_image})"
            ):
                kind(
                    "create", "cluster", "--name", self.options.name,
                    "--image", self.tools.node_image, "--config", str(config_file),
                    "--kubeconfig", str(self.options.user_kubeconfig),
                )  # fmt: skip
        else:
            self.say(f"cluster {self.options.name} exists: updating what changed")
        # A file of its own, with this cluster as its only context: the user may switch theirs.
        self.kubeconfig.write_text(kind("get", "kubeconfig", "--name", self.options.name))
        self.kubeconfig.chmod(0o600)
        return created

    def pod_network(self) -> None:
        if run(["docker", "exec", self.node, "ls", CNI_FILE], check=False).strip():
            return
        with _step(self.say, "pod network (ptp CNI) and node Ready"):
            cidr = eventually(
                lambda: (
                    self.kubectl("get", "node", self.node, "-o", "jsonpath={.spec.podCIDR}") or None
                ),
                what=f"a pod CIDR for node {self.node}",
                timeout=120,
                interval=1,
            )
            run(
                ["docker", "exec", "-i", self.node, "sh", "-c", f"cat >{CNI_FILE}"],
                input=cni_config(cidr),
            )
            self.kubectl(
                "wait", "--for=condition=Ready", "node", "--all", "--timeout=180s", timeout=200
            )

    def load_images(self) -> set[str]:
        """Load the images the node lacks or holds in another version; returns those loaded."""
        stale = [
            i for i in (PROXY_IMAGE, PILOT_IMAGE, SAMPLE_IMAGE) if _docker_id(i) != self._node_id(i)
        ]
        if stale:
            with _step(self.say, f"kind load docker-image {' '.join(stale)}"):
                self.tools.kind("load", "docker-image", "--name", self.options.name, *stale)
        return set(stale)

    def _node_id(self, image: str) -> str | None:
        out = run(
            ["docker", "exec", self.node, "crictl", "inspecti", "-o", "json", image], check=False
        )
        try:
            return str(json.loads(out)["status"]["id"])
        except (ValueError, KeyError):
            return None

    def install(self, *, restart: bool) -> None:
        istiolite = Path(sys.executable).parent / "istiolite"
        with _step(self.say, "istiolite install --wait --set imagePullPolicy=Never"):
            out = run(
                [istiolite, "install", "--kubeconfig", self.kubeconfig, "--wait",
                 "--set", "imagePullPolicy=Never"],
                timeout=600,
            )  # fmt: skip
            changed = [line for line in out.splitlines() if "unchanged" not in line]
            self.say("  " + ("\n  ".join(changed) if changed else "every object unchanged"))
        if restart:
            with _step(self.say, "istiod restarted on its new image"):
                self.kubectl("rollout", "restart", "deployment/istiod", "-n", "istio-system")
                self.kubectl(
                    "rollout",
                    "status",
                    "deployment/istiod",
                    "-n",
                    "istio-system",
                    "--timeout=300s",
                    timeout=320,
                )

    def deploy_sample(self, *, restart: bool) -> None:
        kubectl = self.kubectl
        with _step(self.say, f"bookinfo in namespace {NAMESPACE}, injected"):
            kubectl("label", "namespace", NAMESPACE, "istio-injection=enabled", "--overwrite")
            kubectl("apply", "-n", NAMESPACE, "-f", str(SAMPLE))
            kubectl("apply", "-n", NAMESPACE, "-f", "-", input=productpage_node_port())
            if restart:
                kubectl("rollout", "restart", "deployment", "-n", NAMESPACE)
            wait_sample_ready(kubectl)


def wait_sample_ready(kubectl: Kubectl, *, timeout: float = 300) -> None:
    """Every Deployment of the sample rolled out and every pod 2/2: app and istio-proxy ready."""
    deployments = kubectl.json("get", "deployments", "-n", NAMESPACE)["items"]
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        kubectl(
            "rollout", "status", f"deployment/{name}", "-n", NAMESPACE, f"--timeout={timeout:.0f}s",
            timeout=timeout + 20,
        )  # fmt: skip
    try:
        eventually(
            lambda: not _unready_pods(kubectl) or None,
            what="every pod of the sample 2/2",
            timeout=timeout,
            interval=1,
        )
    except AssertionError:
        raise KindError(f"after {timeout:.0f}s: {_unready_pods(kubectl)}") from None


def _unready_pods(kubectl: Kubectl) -> str:
    """What keeps the sample's pods from being 2/2 and injected ('' when nothing does)."""
    problems = []
    for pod in kubectl.json("get", "pods", "-n", NAMESPACE)["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            problems.append(f"{pod['metadata']['name']} terminating")
            continue
        statuses = pod["status"].get("containerStatuses", []) + [
            s for s in pod["status"].get("initContainerStatuses", []) if s["name"] == "istio-proxy"
        ]
        names = {s["name"] for s in statuses}
        unready = sorted(s["name"] for s in statuses if not s.get("ready"))
        if "istio-proxy" not in names:
            problems.append(f"{pod['metadata']['name']} has no istio-proxy (not injected)")
        elif unready:
            problems.append(f"{pod['metadata']['name']}: {', '.join(unready)} not ready")
    return "; ".join(problems)


def _docker_id(image: str) -> str | None:
    out = run(["docker", "image", "inspect", "-f", "{{.Id}}", image], check=False).strip()
    return out or None


# --- tearing down ----------------------------------------------------------------------------


def down(kind: Kind, name: str, *, user_kubeconfig: Path, say: Say) -> None:
    """Delete the cluster, its kubeconfig context and files, and kind's network once unused."""
    if name in kind.clusters():
        with _step(say, f"kind delete cluster {name}"):
            kind("delete", "cluster", "--name", name, "--kubeconfig", str(user_kubeconfig))
    else:
        say(f"no kind cluster {name}")
    for leftover in BUILD.glob(f"{name}.*"):
        leftover.unlink()
    # kind creates the `kind` network and never removes it.
    network = json.loads(run(["docker", "network", "inspect", "kind"], check=False) or "[]")
    if network and not network[0].get("Containers"):
        run(["docker", "network", "rm", "kind"])
        say("removed the Docker network kind (no container uses it)")


# --- make e2e: a throw-away cluster, the scenarios, the logs of a failure ------------------


def collect_logs(kind: Kind, kubectl: Kubectl | None, name: str, dest: Path, say: Say) -> None:
    """What a failure leaves to read: kind's node logs, every container's log (the previous
    instance's too), and for each proxy what pilot-discovery sent it and what Envoy holds."""
    dest.mkdir(parents=True, exist_ok=True)
    attempts: list[tuple[str, Callable[[], object]]] = [
        ("kind export logs", lambda: kind("export", "logs", str(dest / "kind"), "--name", name)),
    ]
    if kubectl is not None:
        attempts.append(("pods", lambda: _pod_logs(kubectl, dest / "pods")))
        attempts.append(("config dumps", lambda: _config_dumps(kubectl, dest / "config_dump")))
    for what, attempt in attempts:
        try:
            attempt()
        except (CommandError, OSError, ValueError, KeyError) as error:
            (dest / "errors.txt").open("a").write(f"{what}: {error}\n")
    say(f"logs kept in {dest}")


def _pod_logs(kubectl: Kubectl, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "pods.txt").write_text(kubectl("get", "pods", "-A", "-o", "wide"))
    (dest / "events.txt").write_text(kubectl("get", "events", "-A", "--sort-by=.lastTimestamp"))
    for pod in kubectl.json("get", "pods", "-A")["items"]:
        ns, pod_name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        spec = pod["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for previous in (False, True):
                argv = ["logs", "-n", ns, pod_name, "-c", container["name"]]
                out = run(kubectl.argv(*argv, *(["--previous"] if previous else [])), check=False)
                if out:
                    suffix = ".previous" if previous else ""
                    (dest / f"{ns}.{pod_name}.{container['name']}{suffix}.log").write_text(out)


def _config_dumps(kubectl: Kubectl, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for pod in kubectl.json("get", "pods", "-n", NAMESPACE)["items"]:
        pod_name = pod["metadata"]["name"]
        proxy_id = f"{pod_name}.{NAMESPACE}"
        sent = run(
            kubectl.argv(
                "get", "--raw",
                f"/api/v1/namespaces/istio-system/services/istiod:8080/proxy/debug/config_dump?proxyID={proxy_id}",
            ),
            check=False,
        )  # fmt: skip
        (dest / f"{proxy_id}.discovery.json").write_text(sent)
        held = run(
            kubectl.argv(
                "exec", "-n", NAMESPACE, pod_name, "-c", "istio-proxy", "--", "python3", "-c",
                "import urllib.request as u; print(u.urlopen('http://127.0.0.1:15000/config_dump').read().decode())",
            ),
            check=False,
        )  # fmt: skip
        (dest / f"{proxy_id}.envoy.json").write_text(held)


def e2e(tools: Tools, pytest_args: Sequence[str], *, keep: bool, say: Say) -> int:
    """`make e2e`: up, the scenarios, logs on failure, down (unless `keep`)."""
    name = "istiolite-e2e"
    options = Options(name=name, host_port=None, user_kubeconfig=BUILD / f"{name}.kind-kubeconfig")
    up = KindUp(tools, options, say)
    kubectl: Kubectl | None = None
    began = time.monotonic()
    try:
        try:
            kubectl = up.run()
        except (KindError, CommandError) as error:
            say(f"bringing the cluster up failed: {error}")
            status = 1
        else:
            argv = [sys.executable, "-m", "pytest", "e2e", "--kind", name, "-p", "no:cacheprovider"]
            say(f"running {' '.join(argv[1:] + list(pytest_args))}")
            status = subprocess.run([*argv, *pytest_args], cwd=ROOT, check=False).returncode
        if status != 0:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            collect_logs(tools.kind, kubectl, name, ROOT / "build" / "e2e-logs" / stamp, say)
    finally:
        if keep:
            say(f"E2E_KEEP is set: cluster {name} kept (kubeconfig {up.kubeconfig})")
        else:
            down(tools.kind, name, user_kubeconfig=options.user_kubeconfig, say=say)
    say(f"make e2e: {'passed' if status == 0 else 'FAILED'} in {time.monotonic() - began:.0f} s")
    return status


# --- the command line ------------------------------------------------------------------------


def _say(line: str) -> None:
    print(f"kind: {line}", file=sys.stderr, flush=True)


def _next_steps(name: str, host_port: int | None) -> str:
    context = f"kind-{name}"
    url = f"http://127.0.0.1:{host_port}/productpage" if host_port else "(no host port mapped)"
    kubectl = f"kubectl --context {context}"
    routing = "samples/bookinfo/networking"
    return f"""
istiolite is running on kind cluster {name!r} (kubectl context {context}).

  productpage: {url}
      curl -s -H 'end-user: jason' {url}

Try (from the repository root):
  {kubectl} apply -f {routing}/destination-rule-all.yaml
  {kubectl} apply -f {routing}/virtual-service-reviews-jason-v2.yaml
  {kubectl} get pods                    # every pod 2/2: the app and istio-proxy
  {kubectl} -n istio-system port-forward deploy/istiod 8080 &
  .venv/bin/istiolite proxy-status --discovery-address localhost:8080
  .venv/bin/istiolite proxy-config routes POD.default --discovery-address localhost:8080
  .venv/bin/pytest e2e --kind {name}    # the end-to-end scenarios, on this cluster
  make kind-down                        # delete it
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.kind", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="create or update the cluster, print how to use it")
    up_parser.add_argument("--name", default="istiolite")
    up_parser.add_argument(
        "--host-port", type=int, default=int(os.environ.get("KIND_HOST_PORT", "9080"))
    )
    down_parser = commands.add_parser("down", help="delete the cluster")
    down_parser.add_argument("--name", default="istiolite")
    e2e_parser = commands.add_parser("e2e", help="the scenarios on a throw-away cluster")
    e2e_parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    kubeconfig = user_kubeconfig(os.environ)
    try:
        if args.command == "down":
            kind = find_tools_kind_only(_say)
            down(kind, args.name, user_kubeconfig=kubeconfig, say=_say)
            return 0
        tools = find_tools(os.environ, _say)
        if args.command == "e2e":
            keep = os.environ.get("E2E_KEEP", "") not in ("", "0")
            return e2e(tools, args.pytest_args, keep=keep, say=_say)
        options = Options(name=args.name, host_port=args.host_port, user_kubeconfig=kubeconfig)
        KindUp(tools, options, _say).run()
        print(_next_steps(args.name, args.host_port))
    except (KindError, CommandError) as error:
        print(f"kind: {error}", file=sys.stderr)
        return 1
    return 0


def find_tools_kind_only(say: Say) -> Kind:
    binary = os.environ.get("KIND") or shutil.which("kind")
    if binary:
        return Kind(Path(binary))
    with _step(say, "kind CLI (tools/kind-node-image.sh kind; cached)"):
        return Kind(Path(_tool_output(["tools/kind-node-image.sh", "kind"])[-1]))


if __name__ == "__main__":
    sys.exit(main())
