"""Start and stop the demo's processes, each in its own session (and so process group).

A process is started as `ip netns exec NS python -I enter.py HOST UID GID -- ARGV`; both
`ip netns exec` and enter.py exec in place, so the pid we get is the program's own pid and
its process group holds the program and its children (the agent's Envoy). Stopping signals
the whole group, and processes left over by a crash are found again through the state file
or, failing that, `ip netns pids`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from istiolite.demo import enter
from istiolite.demo.state import ProcessRecord, Role, read_stat

ENTER = str(Path(enter.__file__).resolve())
_STOP_WAIT = 5.0


class Processes:
    """The handles of the processes this Python process started (it must reap them)."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(
        self,
        *,
        netns: str,
        hostname: str,
        pod: str,
        role: Role,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        uid: int = -1,
        gid: int = -1,
    ) -> ProcessRecord:
        command = ["ip", "netns", "exec", netns, sys.executable, "-I", ENTER, hostname]
        command += [str(uid), str(gid), "--", *argv]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self._children[process.pid] = process
        stat = read_stat(process.pid)
        return ProcessRecord(
            pod=pod,
            role=role,
            pid=process.pid,
            start_time=stat.start_time if stat else 0,
            argv=list(argv),
            log=str(log),
        )

    def stop(self, records: Sequence[ProcessRecord], *, timeout: float = _STOP_WAIT) -> None:
        """SIGTERM each program, then SIGKILL whatever is left of its process group after
        `timeout` (or at once, once the program is gone: its children must not outlive it).
        The processes are stopped together, so a slow drain costs `timeout` once."""
        for record in records:
            if record.alive():
                _signal(record.pid, signal.SIGTERM, group=False)
                if record.state() == "stopped":
                    _signal(record.pid, signal.SIGCONT, group=False)
        deadline = time.monotonic() + timeout
        while any(r.alive() for r in records) and time.monotonic() < deadline:
            for record in records:
                self._reap(record.pid)
            time.sleep(0.05)
        for record in records:
            if record.state() != "gone":
                _signal(record.pid, signal.SIGKILL, group=True)
            self._reap(record.pid, block=True)

    def kill_pids(self, pids: Sequence[int]) -> None:
        """SIGKILL stragglers (found by `ip netns pids`) and reap any that are ours."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            self._reap(pid, block=True)

    def reap_all(self) -> None:
        for pid in list(self._children):
            self._reap(pid, block=True)

    def _reap(self, pid: int, *, block: bool = False) -> None:
        child = self._children.get(pid)
        if child is None:
            return
        if block:
            try:
                child.wait(timeout=_STOP_WAIT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        elif child.poll() is None:
            return
        del self._children[pid]


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
