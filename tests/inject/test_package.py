"""The package's public surface: what pilot-discovery and the CLI import."""

from __future__ import annotations

import istiolite.discovery.inject as inject_package


def test_every_exported_name_exists_and_nothing_private_is_exported() -> None:
    for name in inject_package.__all__:
        assert hasattr(inject_package, name), name
        assert not name.startswith("_"), name
    assert sorted(inject_package.__all__) == sorted(set(inject_package.__all__))
