"""What a running demo is made of, in a file, so any process can inspect or remove it.

`demo up` writes the state file as it goes (after the network, after every process), so a
run that crashes half-way still leaves a record; `down` also sweeps by name prefix, so even
a lost state file leaves nothing behind. Processes are recorded with their kernel start time:
a pid alone could, after a reboot or a long time, name somebody else's process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from istiolite.demo.topology import Pod, ServiceAddress, Topology, Workload

STATE_DIR = Path("/run/istiolite-demo")
LOCK_PATH = Path("/run/istiolite-demo.lock")  # outside STATE_DIR: `down` removes that

Role = Literal["discovery", "agent", "app"]


class DemoBusy(RuntimeError):
    """Another demo command or test run holds the lock."""


@dataclass(slots=True)
class ProcessRecord:
    pod: str
    role: Role
    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat: ticks after boot
    argv: list[str]
    log: str

    @property
    def name(self) -> str:
        return f"{self.pod}/{self.role}"

    def state(self) -> str:
        """`running`, `stopped` (SIGSTOP), `exited`, or `gone` (pid reused by another)."""
        stat = read_stat(self.pid)
        if stat is None:
            return "exited"
        if stat.start_time != self.start_time:
            return "gone"
        return {"Z": "exited", "X": "exited", "T": "stopped", "t": "stopped"}.get(
            stat.state, "running"
        )

    def alive(self) -> bool:
        return self.state() in ("running", "stopped")


@dataclass(slots=True)
class DemoState:
    made_by: str  # "cli" or "pytest": tests sweep their own leftovers, never a user's demo
    sample: str
    topology: dict[str, Any]
    created: float = field(default_factory=time.time)
    processes: list[ProcessRecord] = field(default_factory=list)

    def record(self, process: ProcessRecord) -> None:
        self.processes = [p for p in self.processes if p.name != process.name] + [process]

    def find(self, pod: str, role: Role) -> ProcessRecord | None:
        return next((p for p in self.processes if p.pod == pod and p.role == role), None)

    def alive(self) -> list[ProcessRecord]:
        return [p for p in self.processes if p.alive()]


@dataclass(frozen=True, slots=True)
class Stat:
    state: str
    ppid: int
    start_time: int
    comm: str


def read_stat(pid: int) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm is in parentheses and may itself contain spaces and parentheses.
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    return Stat(state=rest[0], ppid=int(rest[1]), start_time=int(rest[19]), comm=comm)


class StateStore:
    def __init__(self, directory: Path = STATE_DIR, lock_path: Path = LOCK_PATH) -> None:
        self.directory = directory
        self.lock_path = lock_path
        self.path = directory / "state.json"
        self.logs = directory / "logs"
        self.config = directory / "config"  # pilot-discovery's watched directory
        self.pods = directory / "pods"

    def load(self) -> DemoState | None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a half-written file from a crash: treated as no state, then swept
        processes = [ProcessRecord(**p) for p in raw.pop("processes", [])]
        return DemoState(**raw, processes=processes)

    def save(self, state: DemoState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
        os.replace(partial, self.path)

    @contextlib.contextmanager
    def locked(self, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the demo lock: one `up`, `down`, `apply` or test session at a time."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as handle:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DemoBusy(
                            f"another `istiolite demo` command or test run holds {self.lock_path}"
                        ) from None
                    time.sleep(0.5)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def topology_to_json(topology: Topology) -> dict[str, Any]:
    return asdict(topology)


def topology_from_json(raw: dict[str, Any]) -> Topology:
    def pod(p: dict[str, Any]) -> Pod:
        w = p.get("workload")
        return Pod(**{**p, "workload": Workload(**w) if w else None})

    return Topology(
        pods=tuple(pod(p) for p in raw["pods"]),
        discovery=pod(raw["discovery"]),
        services=tuple(
            ServiceAddress(**{**s, "ports": tuple(s["ports"])}) for s in raw["services"]
        ),
        mesh=raw["mesh"],
    )
