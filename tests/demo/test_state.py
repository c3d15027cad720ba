"""The state file and lock that let `status` and `down` work from any process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from istiolite.demo.state import (
    DemoBusy,
    DemoState,
    ProcessRecord,
    StateStore,
    read_stat,
    topology_from_json,
    topology_to_json,
)
from istiolite.demo.topology import plan, read_sample

SAMPLE = Path(__file__).parents[2] / "samples" / "bookinfo" / "platform" / "kube" / "bookinfo.yaml"


def _record(pid: int) -> ProcessRecord:
    stat = read_stat(pid)
    assert stat is not None
    return ProcessRecord("reviews-v1", "app", pid, stat.start_time, ["app"], "/dev/null")


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "demo", tmp_path / "lock")
    topology = plan(read_sample(SAMPLE.read_text()))
    state = DemoState(
        made_by="pytest", sample="samples/bookinfo", topology=topology_to_json(topology)
    )
    state.record(_record(os.getpid()))
    store.save(state)
    loaded = store.load()
    assert loaded is not None
    assert topology_from_json(loaded.topology) == topology
    assert loaded.processes == state.processes
    assert loaded.alive() == state.processes


def test_no_file_or_a_torn_file_reads_as_no_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path, tmp_path / "lock")
    assert store.load() is None
    store.path.write_text('{"made_by": "cli", "sam')
    assert store.load() is None


def test_a_process_is_known_by_pid_and_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    record = _record(child.pid)
    assert record.state() in ("running", "exited")
    child.wait()
    assert record.state() == "exited" and not record.alive()
    mine = _record(os.getpid())
    assert mine.state() == "running"
    mine.start_time -= 1  # the same pid, started at another time: somebody else
    assert mine.state() == "gone" and not mine.alive()


def test_a_second_holder_of_the_lock_is_turned_away(tmp_path: Path) -> None:
    first, second = StateStore(tmp_path, tmp_path / "lock"), StateStore(tmp_path, tmp_path / "lock")
    with first.locked(), pytest.raises(DemoBusy, match="holds"), second.locked(wait=0.2):
        pass
    with second.locked():
        pass
