"""kubectl and kind, run as programs: what the e2e suite and `make kind-up` ask of them.

Both are driven through their command lines, as a user would, so a failure reads like the
command a user can paste. Errors carry the command and what it printed on stderr.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CommandError", "Kind", "Kubectl", "run"]


class CommandError(RuntimeError):
    """A command exited non-zero (or did not finish in time); the message has its stderr."""


def run(
    argv: Sequence[str | Path],
    *,
    input: str | bytes | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> str:
    """Run a command, return its stdout; raise CommandError naming it when it fails."""
    args = [str(a) for a in argv]
    data = input.encode() if isinstance(input, str) else input
    try:
        done = subprocess.run(args, input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise CommandError(f"{' '.join(args)}: no answer in {timeout:.0f}s") from error
    if check and done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()
        raise CommandError(f"{' '.join(args)}: exit {done.returncode}: {stderr[-2000:]}")
    return done.stdout.decode(errors="replace")


@dataclass(frozen=True, slots=True)
class Kubectl:
    """kubectl for one cluster: a kubeconfig file and, optionally, one of its contexts."""

    binary: Path
    kubeconfig: Path
    context: str | None = None

    def argv(self, *args: str) -> list[str]:
        chosen = ["--context", self.context] if self.context else []
        return [str(self.binary), "--kubeconfig", str(self.kubeconfig), *chosen, *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120.0) -> str:
        return run(self.argv(*args), input=input, timeout=timeout)

    def json(self, *args: str, timeout: float = 60.0) -> Any:
        return json.loads(self(*args, "-o", "json", timeout=timeout))

    def raw(self, path: str, *, timeout: float = 30.0) -> str:
        """GET an API path (`kubectl get --raw`), e.g. a pod's port through the API server."""
        return self("get", "--raw", path, timeout=timeout)


@dataclass(frozen=True, slots=True)
class Kind:
    """The kind CLI (built by tools/kind-node-image.sh, or any kind on PATH)."""

    binary: Path

    def __call__(self, *args: str, timeout: float = 600.0, input: str | None = None) -> str:
        return run([self.binary, *args], timeout=timeout, input=input)

    def clusters(self) -> list[str]:
        return self("get", "clusters", timeout=60).split()

    def nodes(self, name: str) -> list[str]:
        return self("get", "nodes", "--name", name, timeout=60).split()
