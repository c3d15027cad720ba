"""A network namespace for tests that capture traffic with iptables, and a way to act in it.

Processes start inside with `ip netns exec`. The test process itself stays in the host
namespace; `NetNamespace.run(fn)` calls `fn` on a fresh thread that has joined the namespace
(setns affects only the calling thread), so sockets `fn` opens live there. Nothing in the
namespace is reachable from outside it, and it has no route out.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces and iptables"
    for tool in ("ip", "iptables"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            return f"needs the {tool} command"
    return None


def sh(*cmd: str, netns: str | None = None) -> str:
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    result = subprocess.run(full, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(full)} failed: {result.stderr.strip()}")
    return result.stdout


class NetNamespace:
    def __init__(self, prefix: str = "ilx") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> NetNamespace:
        sh("ip", "netns", "add", self.name)
        self.sh("ip", "link", "set", "lo", "up")
        return self

    def __exit__(self, *_: object) -> None:
        # Kill whatever still runs inside, then remove the namespace.
        pids = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False
        )
        for pid in pids.stdout.split():
            subprocess.run(["kill", "-9", pid], check=False)
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def sh(self, *cmd: str) -> str:
        return sh(*cmd, netns=self.name)

    def run(self, fn: Callable[[], T]) -> T:
        """Call `fn` on a thread inside this namespace and return its result."""
        box: dict[str, object] = {}

        def target() -> None:
            try:
                with open(f"/run/netns/{self.name}") as f:
                    if _libc.setns(f.fileno(), _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                box["result"] = fn()
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e

        thread = threading.Thread(target=target, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["result"]  # type: ignore[return-value]
