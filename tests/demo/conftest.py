from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e import figures
from e2e.fixtures import netns_cluster, require_netns, tests_lock
from istiolite.demo import NetnsCluster


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures.terminal_summary(terminalreporter, "what the scenarios measured")


@pytest.fixture(scope="session")
def demo_turn() -> Iterator[None]:
    """This session's turn at the machine's one demo (other sessions wait for it)."""
    require_netns()
    with tests_lock():
        yield


@pytest.fixture(scope="session")
def cluster(demo_turn: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    """The sample in the mesh on network namespaces, shared by the scenarios (root only)."""
    with netns_cluster(keep_logs=tmp_path_factory.mktemp("demo-logs")) as made:
        yield made
