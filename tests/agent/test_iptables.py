"""Capture rules: golden files for the generator, and a real network namespace to prove them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from istiolite.agent.iptables import capture_rules, cleanup_commands
from istiolite.agent.settings import CaptureSettings, ProxySettings, resolve
from tests.agent.golden import assert_golden


def test_default_rules_match_golden() -> None:
    assert_golden("iptables_default.txt", capture_rules(CaptureSettings()))


def test_rules_with_exclusions_match_golden() -> None:
    settings = CaptureSettings(
        proxy_uid=2000,
        proxy_gid=2001,
        outbound_port=16001,
        inbound_port=16006,
        exclude_inbound_ports=(15020, 22),
        exclude_outbound_ports=(5432,),
        exclude_outbound_cidrs=("10.96.0.0/12", "169.254.169.254/32"),
    )
    assert_golden("iptables_exclusions.txt", capture_rules(settings))


def test_only_listed_inbound_ports_are_captured_when_included() -> None:
    rules = capture_rules(CaptureSettings(include_inbound_ports="9080,15020,8443"))
    inbound = [line for line in rules.splitlines() if line.startswith("-A ISTIO_INBOUND")]
    assert inbound == [
        "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_INBOUND -p tcp --dport 8443 -j ISTIO_IN_REDIRECT",
    ]


def test_no_inbound_capture_when_include_is_empty() -> None:
    rules = capture_rules(CaptureSettings(include_inbound_ports=""))
    assert not [line for line in rules.splitlines() if line.startswith("-A ISTIO_INBOUND")]
    assert "-A ISTIO_OUTPUT -j ISTIO_REDIRECT" in rules


def test_envoy_own_traffic_returns_before_the_catch_all_redirect() -> None:
    lines = capture_rules(CaptureSettings()).splitlines()
    own = lines.index("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
    passthrough = lines.index("-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
    assert passthrough < own < lines.index("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")


def test_cleanup_removes_the_jumps_before_the_chains() -> None:
    commands = [" ".join(c) for c in cleanup_commands()]
    assert commands[0] == "-t nat -D PREROUTING -p tcp -j ISTIO_INBOUND"
    assert commands.index("-t nat -X ISTIO_OUTPUT") > commands.index(
        "-t nat -D OUTPUT -p tcp -j ISTIO_OUTPUT"
    )


# --- in a real network namespace -----------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces")

# Small programs run inside the namespaces with `ip netns exec`.
SERVER = (
    "import http.server as h; "
    "h.ThreadingHTTPServer(('0.0.0.0', {port}), h.SimpleHTTPRequestHandler).serve_forever()"
)
AS_USER = (  # enter the namespace as root, then drop to the uid given first
    "import os, sys; i = int(sys.argv[1]); "
    "os.setgroups([]); os.setgid(i); os.setuid(i); os.execv(sys.argv[2], sys.argv[2:])"
)
FETCH = "import urllib.request as u, sys; print(u.urlopen(sys.argv[1], timeout=5).status)"
STAT = (
    "import urllib.request as u, sys; "
    "print(u.urlopen('http://127.0.0.1:15000/stats?filter=^' + sys.argv[1] + '$').read().decode())"
)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Pod:
    """Two namespaces joined by a veth pair: the pod (10.250.n.2) and a peer (10.250.n.1)."""

    ns: str
    peer: str
    ip: str
    peer_ip: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(
        self, *argv: str, ns: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", ns or self.ns, *argv, check=check)

    def python(
        self, code: str, *args: str, ns: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-c", code, *args, ns=ns, check=False)

    def spawn(
        self, argv: list[str], log: Path, *, ns: str | None = None, uid: int | None = None
    ) -> subprocess.Popen[bytes]:
        if uid is not None:  # enter the namespace as root, then become `uid`
            argv = [sys.executable, "-c", AS_USER, str(uid), *argv]
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", ns or self.ns, *argv], stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    def nat_rules(self) -> str:
        saved = self.run("iptables-save", "-t", "nat").stdout
        return "\n".join(line for line in saved.splitlines() if not line.startswith(("#", ":")))

    def envoy_stat(self, name: str) -> int:
        text = self.python(STAT, name.replace(".", r"\.")).stdout
        return int(text.split(": ")[1]) if ": " in text else -1


@pytest.fixture
def pod() -> Iterator[Pod]:
    tag = uuid.uuid4().hex[:6]
    subnet = int(tag[:2], 16) % 200 + 20
    made = Pod(f"ilag-pod-{tag}", f"ilag-peer-{tag}", f"10.250.{subnet}.2", f"10.250.{subnet}.1")
    try:
        for ns in (made.ns, made.peer):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"ilp{tag}", "type", "veth", "peer", "name", f"ilq{tag}")
        for ns, dev, ip in (
            (made.ns, f"ilp{tag}", made.ip),
            (made.peer, f"ilq{tag}", made.peer_ip),
        ):
            _run("ip", "link", "set", dev, "netns", ns)
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
        yield made
    finally:
        for process in made.processes:
            process.kill()
            process.wait(timeout=10)
        for ns in (made.ns, made.peer):
            # Processes left in the namespace keep it alive; kill them before deleting it.
            pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                _run("kill", "-9", pid, check=False)
            _run("ip", "netns", "del", ns, check=False)


def _capture_envoy_config() -> dict[str, object]:
    """Envoy's two capture listeners, forwarding to wherever the connection was going."""

    def listener(name: str, port: int, cluster: str) -> dict[str, object]:
        tcp = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": name,
            "cluster": cluster,
        }
        original_dst = {
            "@type": "type.googleapis.com/"
            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
        }
        return {
            "name": name,
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "listener_filters": [
                {"name": "envoy.filters.listener.original_dst", "typed_config": original_dst}
            ],
            "filter_chains": [
                {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]}
            ],
        }

    passthrough = {"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "2s"}
    inbound_source = {"source_address": {"address": "127.0.0.6", "port_value": 0}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "static_resources": {
            "listeners": [
                listener("outbound", 15001, "passthrough"),
                listener("inbound", 15006, "inbound_passthrough"),
            ],
            "clusters": [
                {"name": "passthrough", **passthrough},
                {
                    "name": "inbound_passthrough",
                    **passthrough,
                    "upstream_bind_config": inbound_source,
                },
            ],
        },
    }


@pytest.mark.netns
@pytest.mark.envoy
@needs_root
def test_capture_sends_app_traffic_through_envoy_and_not_envoys_own(
    pod: Pod, tmp_path: Path
) -> None:
    # Envoy runs as uid 1337 and cannot read pytest's private tmp_path.
    shared = Path(tempfile.mkdtemp(prefix="ilag-capture-"))
    shared.chmod(0o755)
    config = shared / "envoy.json"
    config.write_text(json.dumps(_capture_envoy_config()))
    config.chmod(0o644)
    try:
        _prove_capture(pod, tmp_path, config)
    finally:
        shutil.rmtree(shared)


def _prove_capture(pod: Pod, tmp_path: Path, config: Path) -> None:
    envoy = [
        ProxySettings().envoy_path(),
        "-c",
        str(config),
        "--disable-hot-restart",
        "-l",
        "error",
    ]
    pod.spawn(envoy, tmp_path / "envoy.log", uid=1337)
    pod.spawn([sys.executable, "-c", SERVER.format(port=8080)], tmp_path / "app.log")
    pod.spawn([sys.executable, "-c", SERVER.format(port=9090)], tmp_path / "peer.log", ns=pod.peer)
    agent = [sys.executable, "-m", "istiolite.agent.cli", "iptables"]
    deadline = time.monotonic() + 20
    while pod.envoy_stat("tcp.outbound.downstream_cx_total") != 0:
        assert time.monotonic() < deadline, (tmp_path / "envoy.log").read_text()
        time.sleep(0.1)

    pod.run(*agent)
    first = pod.nat_rules()
    pod.run(*agent)
    assert pod.nat_rules() == first, "a second run must not add a second copy"
    assert first.count("-j ISTIO_OUTPUT") == 1

    outbound = pod.python(FETCH, f"http://{pod.peer_ip}:9090/")
    assert outbound.stdout.strip() == "200", outbound.stderr
    # Exactly one connection through the outbound listener: Envoy's own upstream connection
    # to the peer was not captured again (that would loop until it failed).
    assert pod.envoy_stat("tcp.outbound.downstream_cx_total") == 1

    inbound = pod.python(FETCH, f"http://{pod.ip}:8080/", ns=pod.peer)
    assert inbound.stdout.strip() == "200", inbound.stderr
    assert pod.envoy_stat("tcp.inbound.downstream_cx_total") == 1
    assert pod.envoy_stat("tcp.outbound.downstream_cx_total") == 1
    # Envoy handed the connection to the app from the inbound passthrough address.
    assert "127.0.0.6 - - " in (tmp_path / "app.log").read_text()

    pod.run(*agent, "--cleanup")
    assert "ISTIO" not in pod.nat_rules()
    again = pod.python(FETCH, f"http://{pod.ip}:8080/", ns=pod.peer)
    assert again.stdout.strip() == "200", again.stderr
    assert pod.envoy_stat("tcp.inbound.downstream_cx_total") == 1, "no capture after cleanup"


def test_an_ipv6_exclusion_is_accepted_and_needs_no_rule_as_ipv6_is_not_captured() -> None:
    settings = resolve(CaptureSettings, {}, {"EXCLUDE_OUTBOUND_CIDRS": "10.96.0.0/12,fd00::/8"})
    returns = [line for line in capture_rules(settings).splitlines() if line.endswith("RETURN")]
    returns = [line for line in returns if " -d " in line]
    assert returns == [
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN",
    ]
