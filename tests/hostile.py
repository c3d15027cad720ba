"""Files every reader of users' configuration must survive, one of each kind.

Each entry makes its file in a directory and says what the error about it must mention. The
classes: text that is not UTF-8, values that do not fit their YAML tag, data shaped to exhaust
whoever walks it (self-reference, alias bombs, deep nesting), files that are not regular files
(FIFOs, sockets, device nodes, symlinks that lead nowhere or in circles), files too large, and
kinds istiolite would silently ignore.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hostile:
    make: Callable[[Path], object]  # creates the file at the path given
    says: str  # a fragment of the error message about it
    content: bool  # True: a regular file whose bytes are the problem (readable by any reader)


def _bytes(data: bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(data)


def _text(text: str) -> Callable[[Path], object]:
    return lambda path: path.write_text(text)


def _laughs() -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n  " + "\n  ".join(lines)


def _deep_block(levels: int) -> str:
    return "a:\n" + "".join("  " * i + "b:\n" for i in range(1, levels))


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the socket file stays after the socket is closed


def _device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # a second /dev/zero


def _symlink(target: str) -> Callable[[Path], object]:
    return lambda path: path.symlink_to(target)


def _loop(path: Path) -> None:
    other = path.with_name(f".{path.name}-other")  # hidden: read only through the loop
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def _huge(path: Path) -> None:
    with path.open("wb") as f:  # sparse: no disk space used
        f.truncate(33 * 1024 * 1024)


def _kind(api_version: str, kind: str) -> Callable[[Path], object]:
    return _text(f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n")


HOSTILE: dict[str, Hostile] = {
    # encodings
    "latin1.yaml": Hostile(_bytes(b"apiVersion: v1\nkind: ConfigMap # caf\xe9\n"), "UTF-8", True),
    "utf16.yaml": Hostile(_bytes("apiVersion: v1\n".encode("utf-16")), "UTF-16", True),
    "utf32.yaml": Hostile(_bytes("apiVersion: v1\n".encode("utf-32")), "UTF-32", True),
    "overlong.yaml": Hostile(_bytes(b"a: \xc0\xaf\n"), "UTF-8", True),
    "surrogate.yaml": Hostile(_bytes(b"a: \xed\xa0\x80\n"), "UTF-8", True),
    "nul.yaml": Hostile(_bytes(b"a: b\x00\n"), "control characters", True),
    # values that do not fit their tag
    "float-tag.yaml": Hostile(_text("a: !!float x\n"), "!!float", True),
    "timestamp-tag.yaml": Hostile(_text("a: !!timestamp 2001-99\n"), "!!timestamp", True),
    "day-tag.yaml": Hostile(_text("a: !!timestamp 2001-02-30\n"), "day is out of range", True),
    "bool-tag.yaml": Hostile(_text("a: !!bool maybe\n"), "!!bool", True),
    "int-tag.yaml": Hostile(_text("a: !!int 0xZZ\n"), "!!int", True),
    "digits.yaml": Hostile(_text("a: " + "9" * 5000 + "\n"), "4300 digits", True),
    "binary-tag.yaml": Hostile(_text("a: !!binary [1]\n"), "scalar", True),
    # data shaped to exhaust whoever walks it
    "self-alias.yaml": Hostile(_text("a: &a [1, *a]\n"), "contains it", True),
    "laughs.yaml": Hostile(_text(_laughs()), "billion laughs", True),
    "deep-flow.yaml": Hostile(_text("a: " + "[" * 500 + "]" * 500 + "\n"), "deeper", True),
    "deep-block.yaml": Hostile(_text(_deep_block(300)), "deeper", True),
    # not regular files
    "fifo.yaml": Hostile(_fifo, "FIFO", False),
    "socket.yaml": Hostile(_socket, "socket", False),
    "device.yaml": Hostile(_device, "character device", False),
    "dev-zero.yaml": Hostile(_symlink("/dev/zero"), "character device", False),
    "dangling.yaml": Hostile(_symlink("nowhere/mesh.yaml"), "broken symlink", False),
    "loop.yaml": Hostile(_loop, "symlink loop", False),
    "huge.yaml": Hostile(_huge, "32 MiB", True),
    # kinds istiolite would ignore
    "envoy-filter.yaml": Hostile(
        _kind("networking.istio.io/v1alpha3", "EnvoyFilter"), "'EnvoyFilter'", True
    ),
    "workload-group.yaml": Hostile(
        _kind("networking.istio.io/v1beta1", "WorkloadGroup"), "'WorkloadGroup'", True
    ),
    "authz.yaml": Hostile(
        _kind("security.istio.io/v1", "AuthorizationPolicy"), "'AuthorizationPolicy'", True
    ),
    "netpol.yaml": Hostile(_kind("networking.k8s.io/v1", "NetworkPolicy"), "'NetworkPolicy'", True),
    "gizmo.yaml": Hostile(_kind("networking.istio.io/v1", "Gizmo"), "'Gizmo'", True),
    "misspelt.yaml": Hostile(
        _kind("networking.istio.io/v1", "DestinatonRule"), "did you mean 'DestinationRule'", True
    ),
    "misspelt-core.yaml": Hostile(_kind("v1", "Servce"), "did you mean 'Service'", True),
}

KINDS = {"envoy-filter.yaml", "workload-group.yaml", "authz.yaml", "netpol.yaml", "gizmo.yaml"}
KINDS |= {"misspelt.yaml", "misspelt-core.yaml"}


def make(directory: Path, name: str) -> Path:
    path = directory / name
    HOSTILE[name].make(path)
    return path


def made(directory: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Each file of `names` (default: all) made in `directory`, but those this process may not
    make (a device node needs CAP_MKNOD)."""
    found = {}
    for name in HOSTILE if names is None else names:
        try:
            found[name] = make(directory, name)
        except PermissionError:
            continue
    return found
