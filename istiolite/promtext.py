"""Prometheus text, read as exposed: `{"name{labels}": value}`.

prometheus_client's own parser renames what it reads (it puts `_total` back on counters), so
tests and tools that check names as istiod and the agent expose them read the text directly.
"""

from __future__ import annotations

import contextlib

__all__ = ["parse_prometheus"]


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value}, keys exactly as exposed."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[key] = float(value)
    return samples
