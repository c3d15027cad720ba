from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.fixtures import netns_cluster, tests_lock
from istiolite.demo import NetnsCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    with tests_lock(), netns_cluster(keep_logs=tmp_path_factory.mktemp("demo-logs")) as made:
        yield made
