"""Figures the scenarios measure (weights, success rates, time to heal), shown after the run.

A scenario calls `report("retries", "97.9% succeeded with 5 retries")`; the conftest of each
suite that collects the scenarios prints every figure in pytest's terminal summary, so a CI log
shows the numbers behind each pass.
"""

from __future__ import annotations

from typing import Any

__all__ = ["report", "terminal_summary"]

_FIGURES: list[tuple[str, str]] = []


def report(scenario: str, figure: str) -> None:
    _FIGURES.append((scenario, figure))


def terminal_summary(terminalreporter: Any, title: str) -> None:
    """Print the figures under `title` (for conftest.py's pytest_terminal_summary)."""
    if not _FIGURES:
        return
    terminalreporter.section(title)
    for scenario, figure in _FIGURES:
        terminalreporter.write_line(f"{scenario}: {figure}")
