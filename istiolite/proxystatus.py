"""`istiolite proxy-status`: each connected proxy and whether it has taken the latest config.

Reads pilot-discovery's /debug/syncz and prints one row per proxy, like `istioctl
proxy-status`: per xDS type SYNCED (the last response sent was ACKed), STALE (sent, no answer
yet), NACKED (the proxy rejected it and runs its previous config) or NOT SENT. Below the table, each
rejection with Envoy's reason, and each CDS response Envoy holds unanswered (discovery's
/debug/syncz says `held`: see docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPES = ("CDS", "LDS", "EDS", "RDS")


def proxy_name(proxy_id: str) -> str:
    """The pod part of a node id: `sidecar~<ip>~reviews-v1.default~...` -> `reviews-v1.default`."""
    parts = proxy_id.split("~")
    return parts[2] if len(parts) == 4 else proxy_id


def sync_state(state: Mapping[str, Any] | None) -> str:
    if not state or not state.get("sent"):
        return "NOT SENT"
    if state.get("nacked") and state.get("nacked") == state.get("sent"):
        return "NACKED"
    return "SYNCED" if state.get("acked") == state.get("sent") else "STALE"


def format_table(syncz: Mapping[str, Any], *, discovery: str) -> str:
    rows = [["NAME", *TYPES, "DISCOVERY", "GENERATION"]]
    for proxy in sorted(syncz.get("proxies", []), key=lambda p: str(p.get("proxy"))):
        types = proxy.get("types", {})
        rows.append(
            [
                proxy_name(str(proxy.get("proxy") or proxy.get("connection"))),
                *(sync_state(types.get(t)) for t in TYPES),
                discovery,
                str(syncz.get("generation", "")),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def errors(syncz: Mapping[str, Any]) -> list[str]:
    """One line per rejected config, with Envoy's reason."""
    out = []
    for proxy in syncz.get("proxies", []):
        for kind, state in proxy.get("types", {}).items():
            name = proxy_name(str(proxy.get("proxy")))
            if state.get("error"):
                out.append(
                    f"{name} rejected {kind} version {state.get('nacked')}: {state['error']}"
                )
            if state.get("held"):
                out.append(
                    f"{name} has not answered {kind} version {state.get('sent')}: Envoy holds "
                    "CDS answers while clusters warm, and keeps some it rejects warming "
                    "(its log says which)"
                )
    return out
