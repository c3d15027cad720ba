"""The cluster the scenarios run on: the netns demo (default, root), or a kind cluster.

.venv/bin/pytest e2e                       the demo's network namespaces on this machine
.venv/bin/pytest e2e --kind istiolite      a kind cluster `make kind-up` made
make e2e                                   a throw-away kind cluster (python -m e2e.kind e2e)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e import figures
from e2e.cluster import Cluster
from e2e.fixtures import kind_cluster, netns_cluster, tests_lock


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kind",
        metavar="NAME",
        default=None,
        help="run on the kind cluster NAME (made by `make kind-up` or `python -m e2e.kind up`)",
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures.terminal_summary(terminalreporter, "what the scenarios measured")


@pytest.fixture(scope="session")
def kind_name(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("--kind")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def cluster(kind_name: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if kind_name:
        with kind_cluster(kind_name, logs=tmp_path_factory.mktemp("kind-logs")) as made:
            yield made
        return
    with tests_lock(), netns_cluster(keep_logs=tmp_path_factory.mktemp("demo-logs")) as netns:
        yield netns
