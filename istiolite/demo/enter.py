"""Become a pod's process, then exec the command: `enter.py HOSTNAME UID GID -- ARGV...`.

Run after `ip netns exec` (which gives the network namespace and the /etc/netns files). This
adds what a container would: its own UTS namespace with the pod's name as host name (the
sample apps report it as `instance`), and, for the sidecar, the proxy's uid or gid, so
the capture rules recognize Envoy's own traffic. -1 keeps root's uid or gid.

It is run as a file (`python -I enter.py`), not as a module, so no package is imported on
the way to exec; it only needs the standard library.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys

CLONE_NEWUTS = 0x04000000


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        sys.exit("usage: enter.py HOSTNAME UID GID -- COMMAND [ARG...]")
    hostname, uid, gid, command = argv[0], int(argv[1]), int(argv[2]), argv[4:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUTS) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWUTS): {os.strerror(error)}")
    socket.sethostname(hostname)
    if gid >= 0:
        os.setgroups([])
        os.setgid(gid)
    if uid >= 0:
        os.setuid(uid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
