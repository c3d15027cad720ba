"""Start-up checks of the sidecar's settings that need the file system.

A path that cannot work stops the agent at once with one line naming the setting (exit 2),
as a malformed value does (settings.py), instead of a traceback from deep inside (a
PROXY_CONFIG_PATH that is a file or cannot be written) or an Envoy that is restarted forever
(an ENVOY_BINARY that does not exist). Each check answers with the problem, or None.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from istiolite.agent.bootstrap import parse_labels_file
from istiolite.agent.settings import ProxySettings


def sidecar_problems(settings: ProxySettings) -> Iterator[tuple[str, str]]:
    """(field, problem) for every sidecar setting naming a path that cannot be used."""
    checks = {
        "config_path": writable_directory(settings.config_path),
        "envoy_binary": runnable(settings.envoy_path()),
        "pod_labels_path": _labels_problem(settings.pod_labels_path),
        "termination_message_path": _not_a_directory(settings.termination_message_path),
    }
    yield from ((field, problem) for field, problem in checks.items() if problem)


def writable_directory(path: Path) -> str | None:
    """The directory exists or can be made (its parent exists), and a file can be written in it.

    Parents are not made: a missing one is a mistyped path more often than a wish, and the
    directory is a mounted volume in a pod anyway.
    """
    try:
        if not path.is_dir():
            if path.exists():
                return "expected a directory; this is a file"
            if not path.parent.is_dir():
                return f"expected a directory in an existing one; {path.parent} does not exist"
            path.mkdir()
        # Trying is the only sure test: root passes every permission check a read-only
        # mount still fails.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return f"expected a writable directory: {error.strerror or error}"
    return None


def runnable(binary: str) -> str | None:
    """A path to an executable file, or a name found on PATH."""
    if "/" not in binary:
        if shutil.which(binary) is None:
            return f"{binary!r} is not on PATH; install istiolite[proxy] or set ENVOY_BINARY"
        return None
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        return f"expected an executable file; {binary} is not one"
    return None


def read_labels(path: Path) -> dict[str, str] | None:
    """The pod's labels from the downward-API file; None when there is no such file.

    Raises OSError when the file cannot be read, ValueError when it is not a labels file.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None  # outside Kubernetes, or not mounted: ISTIO_METAJSON_LABELS has them
    return parse_labels_file(text)


def _labels_problem(path: Path) -> str | None:
    try:
        read_labels(path)
    except IsADirectoryError:
        return "expected a file of labels; this is a directory"
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        return f"expected the downward API's labels file: {reason}"
    return None


def _not_a_directory(path: Path) -> str | None:
    # Written only when it exists (Kubernetes mounts it); a directory there is a mistake.
    return "expected a file; this is a directory" if path.is_dir() else None
