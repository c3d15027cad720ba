from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from istiolite.testing.mesh import Discovery, workdir


@pytest.fixture
def work() -> Iterator[Path]:
    with workdir() as path:
        yield path


@pytest.fixture
def config_dir(work: Path) -> Path:
    path = work / "config"
    path.mkdir()
    return path


@pytest.fixture
def discovery(work: Path, config_dir: Path) -> Iterator[Discovery]:
    shutil.copy(Path(__file__).parent / "testdata" / "mesh.yaml", config_dir / "mesh.yaml")
    d = Discovery(config_dir, work).start()
    yield d
    d.stop()
