"""The mesh on one machine: the sample in network namespaces, with sidecars (`istiolite demo`).

`NetnsCluster` (runtime.py) is both the demo's runtime and a cluster for the end-to-end
scenarios in e2e/. `enter.py` and `loadclient.py` run as standalone files inside the
namespaces. Every `istiolite` command imports the demo's command group, so the runtime (an
HTTP client, YAML, the API model) is imported only when something here is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from istiolite.demo.loadclient import Reply
    from istiolite.demo.runtime import DemoError, NetnsCluster

DEFAULT_SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "bookinfo"

__all__ = ["DEFAULT_SAMPLE", "DemoError", "NetnsCluster", "Reply"]


def __getattr__(name: str) -> Any:
    if name in ("DemoError", "NetnsCluster"):
        from istiolite.demo import runtime  # noqa: PLC0415

        return getattr(runtime, name)
    if name == "Reply":
        from istiolite.demo import loadclient  # noqa: PLC0415

        return loadclient.Reply
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
