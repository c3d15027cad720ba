"""Apply or remove the capture rules of `iptables.py` with the iptables tools.

Applying first removes any previous copy of the rules, so a second run (an init container
restarted by the kubelet) leaves exactly one copy. Other rules in the nat table are kept.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from istiolite.agent.iptables import capture_rules, cleanup_commands
from istiolite.agent.settings import CaptureSettings


def apply(settings: CaptureSettings, *, echo: Callable[[str], None]) -> int:
    """Returns the process exit code: 0 on success."""
    rules = capture_rules(settings)
    if settings.dry_run:
        echo(rules.rstrip("\n"))
        return 0
    remove()
    if settings.cleanup:
        echo("removed the capture rules")
        return 0
    done = subprocess.run(
        ["iptables-restore", "--noflush"], input=rules, text=True, capture_output=True, check=False
    )
    if done.returncode != 0:
        echo(f"iptables-restore failed ({done.returncode}): {done.stderr.strip()}")
        echo(rules.rstrip("\n"))
        return 1
    echo("installed the capture rules")
    return 0


def remove() -> None:
    """Delete the rules and chains; missing ones are fine (nothing to clean up)."""
    for command in cleanup_commands():
        # A jump may be present more than once if someone applied by hand; delete them all.
        repeat = command[2] == "-D"
        while True:
            done = subprocess.run(["iptables", *command], capture_output=True, check=False)
            if done.returncode != 0 or not repeat:
                break
