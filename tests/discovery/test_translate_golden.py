"""Golden files: the exact Envoy configuration a mesh and a proxy translate into.

Refresh after an intended change with `REFRESH_GOLDEN=1 make test PYTEST_ARGS=tests/discovery`
and read the diff: it is the change in what every Envoy receives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from istiolite.api import parse_yaml
from istiolite.discovery.model import Proxy, Snapshot, build_snapshot
from istiolite.discovery.translate import config_dump

HERE = Path(__file__).parent
GOLDEN = HERE.parent / "golden" / "discovery"


def load_mesh(*names: str) -> Snapshot:
    parsed = [
        p for name in names for p in parse_yaml((HERE / "testdata" / name).read_text(), source=name)
    ]
    errors = [p.error for p in parsed if p.error]
    assert not errors, errors
    return build_snapshot([p.resource for p in parsed if p.resource])


def proxy(name: str, namespace: str, ip: str, **labels: str) -> Proxy:
    return Proxy.from_node(
        f"sidecar~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local",
        {"LABELS": labels, "NAMESPACE": namespace, "NAME": name},
    )


def translate(snapshot: Snapshot, p: Proxy) -> dict[str, Any]:
    return config_dump(snapshot, p)


CASES = {
    "productpage": proxy(
        "productpage-v1-a", "default", "10.1.0.5", app="productpage", version="v1"
    ),
    "reviews-v1": proxy("reviews-v1-a", "default", "10.1.0.11", app="reviews", version="v1"),
    "ratings-vm": proxy("ratings-vm", "default", "10.2.0.5", app="ratings", version="v1"),
    "mysql-client-in-db": proxy("client", "db", "10.1.9.9", app="client"),
}


# The same mesh under Sidecars (testdata/sidecars.yaml): reviews sees only ratings and blocks
# the rest (REGISTRY_ONLY); the client in `db` gets the root namespace's default, its own
# namespace only.
SCOPED = {
    "scoped-reviews-v1": CASES["reviews-v1"],
    "scoped-mysql-client-in-db": CASES["mysql-client-in-db"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_translation_matches_golden(case: str) -> None:
    check_golden(f"mesh-{case}.json", translate(load_mesh("mesh.yaml"), CASES[case]))


@pytest.mark.parametrize("case", sorted(SCOPED))
def test_scoped_translation_matches_golden(case: str) -> None:
    got = translate(load_mesh("mesh.yaml", "sidecars.yaml"), SCOPED[case])
    check_golden(f"mesh-{case}.json", got)


def check_golden(name: str, got: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = json.dumps(got, indent=1, sort_keys=True) + "\n"
    if os.environ.get("REFRESH_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with REFRESH_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs; REFRESH_GOLDEN=1 to accept"


def test_translation_is_deterministic() -> None:
    snapshot = load_mesh("mesh.yaml")
    assert translate(snapshot, CASES["productpage"]) == translate(
        load_mesh("mesh.yaml"), CASES["productpage"]
    )
