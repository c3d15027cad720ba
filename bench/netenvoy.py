"""Real Envoys for benchmarks, each in a network namespace of its own, reaching discovery on the
host's loopback through a tunnel.

Why: a sidecar's configuration binds `0.0.0.0:15001` and `0.0.0.0:15006`, and the bootstrap's
Prometheus and health listeners bind all interfaces too. On the host that means listening
beyond loopback, and several Envoys binding the same ports (SO_REUSEPORT lets them, and they
steal each other's connections). In a namespace of its own, with nothing but `lo`, an Envoy's
"all interfaces" is its own loopback.

Discovery stays on the host's 127.0.0.1. The tunnel listens on the namespace's 127.0.0.1 at the
same port and copies bytes to the host's: a socket belongs to the namespace it was created in,
so one thread created inside the namespace listens there while the connections it makes to
discovery are made from the host's. TCP_NODELAY on both legs, or Nagle holds the small
messages back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from istiolite.testing.mesh import Envoy
from istiolite.testing.netns import NetNamespace

_CHUNK = 256 * 1024


class Tunnel:
    """127.0.0.1:PORT inside a namespace, forwarded to 127.0.0.1:PORT on the host."""

    def __init__(self, ns: NetNamespace, port: int) -> None:
        self.port = port
        self.listener = ns.run(lambda: _listen(port))
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"tunnel-{port}").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                inner, _ = self.listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.port))
            except OSError:
                inner.close()
                continue
            for s in (inner, outer):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def _listen(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def _pump(src: socket.socket, dst: socket.socket) -> None:
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        while n := src.recv_into(buffer):
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def envoy_in_namespace(
    discovery_port: int, work: Path, *, name: str, namespace: str, ip: str, labels: dict[str, str]
) -> Iterator[Envoy]:
    """A started Envoy in a fresh namespace, its xDS tunnelled to the host's discovery port."""
    with NetNamespace(prefix="ilb") as ns:
        tunnel = Tunnel(ns, discovery_port)
        envoy = Envoy(
            f"127.0.0.1:{discovery_port}",
            work,
            name=name,
            namespace=namespace,
            ip=ip,
            labels=labels,
            ns=ns,
        )
        try:
            yield envoy.start()
        finally:
            envoy.stop()
            tunnel.close()
