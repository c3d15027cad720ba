"""`istiolite demo` as a user runs it, and `down` after a crash: nothing may be left behind.

These run before the scenarios' shared cluster comes up (file order) and skip when it is
already up in this session: there is one demo per machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from e2e.fixtures import refuse_a_users_demo, session_cluster
from istiolite.demo import network
from istiolite.demo.network import GUARD_CHAIN, NETNS_ETC
from istiolite.demo.state import StateStore

pytestmark = pytest.mark.netns
ISTIOLITE = str(Path(sys.executable).parent / "istiolite")


def demo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [ISTIOLITE, "demo", *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert not check or done.returncode == 0, (
        f"istiolite demo {' '.join(args)}:\n{done.stdout}{done.stderr}"
    )
    return done


def leftovers() -> list[str]:
    found = [f"netns {n}" for n in network.demo_netns()]
    found += [f"link {n}" for n in network.demo_links()]
    found += [f"{p}" for p in NETNS_ETC.glob("il-*")]
    if network.run(["iptables", "-w", "-S"], check=False).count(GUARD_CHAIN):
        found.append(f"iptables {GUARD_CHAIN}")
    if StateStore().directory.exists():
        found.append(str(StateStore().directory))
    return found


@pytest.fixture
def no_demo(demo_turn: None) -> Iterator[StateStore]:
    if session_cluster() is not None:
        pytest.skip("the scenarios' cluster is up in this session; run this file on its own")
    store = StateStore()
    refuse_a_users_demo(store)
    demo("down")  # whatever an earlier, crashed test run left
    yield store
    demo("down", check=False)


def test_up_prints_where_productpage_answers_and_down_removes_it(no_demo: StateStore) -> None:
    up = demo("up", "--without-mesh")
    match = re.search(r"curl -s (\S+)", up.stdout)
    assert match, up.stdout
    page = httpx.get(match[1], trust_env=False, timeout=10).json()
    assert page["reviews"]["status"] == 200 and page["details"]["status"] == 200
    assert page["instance"] == "productpage-v1", "the pod's name is its host name"
    status = demo("status").stdout
    assert status.count(" ready") == 6 and "memory of all demo processes" in status, status

    demo("down")
    assert leftovers() == []
    assert "no demo is running" in demo("status", check=False).stderr


def test_down_cleans_up_after_a_crashed_up_and_a_lost_state_file(no_demo: StateStore) -> None:
    # What an even earlier crash might have left: `up` must clear it away first.
    network.run(["ip", "netns", "add", "il-leftover"])
    starting = subprocess.Popen(
        [ISTIOLITE, "demo", "up"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while len(_processes(no_demo)) < 13 or not _base_ids(no_demo):  # 6 apps, 6 agents, discovery
        if time.monotonic() > deadline or starting.poll() is not None:
            pytest.fail(
                f"`istiolite demo up` did not get going:\n{starting.communicate()[0].decode()}"
            )
        time.sleep(0.2)
    starting.send_signal(signal.SIGKILL)  # `up` dies half-way: everything it started runs on
    starting.communicate()
    assert "il-leftover" not in network.demo_netns()
    pids, base_ids = _processes(no_demo), _base_ids(no_demo)
    no_demo.path.unlink()  # and the record of it is lost too

    demo("down")
    assert leftovers() == []
    assert [p for p in pids if _alive(p)] == []
    assert [b for b in base_ids if Path(f"/dev/shm/envoy_shared_memory_{b * 10}").exists()] == []


def _processes(store: StateStore) -> list[int]:
    state = store.load()
    return [p.pid for p in state.processes] if state else []


def _base_ids(store: StateStore) -> list[int]:
    return [
        int(f.read_text())
        for f in store.pods.glob("*/proxy/envoy-base-id")
        if f.read_text().strip()
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for init to reap it is not running.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
