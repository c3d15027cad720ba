"""Whatever validation accepts, a real Envoy accepts: generated routing pushed to Envoy 1.40.

Hypothesis writes VirtualServices and DestinationRules from the API model's schema
(tests/strategies.py). Each pair that validation accepts is written into a running
pilot-discovery's config directory, with a marker Service of its own; once a real Envoy holds
the marker's cluster and virtual host, it has taken the push that carried the pair, and none
of its `update_rejected` counters may have moved. One pilot-discovery and one Envoy serve every
example.

The default run tries FUZZ_EXAMPLES=40 accepted pairs; `make fuzz` runs 1000.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings

from istiolite.api import ValidationError, parse_resource
from istiolite.api.networking import DestinationRuleSpec, VirtualServiceSpec
from istiolite.testing.mesh import Discovery, Envoy, dynamic_names, route_names, workdir
from istiolite.testing.wait import eventually
from tests.strategies import spec_for

pytestmark = pytest.mark.envoy

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
MESH = Path(__file__).parent / "testdata" / "fuzz-mesh.yaml"


@dataclass
class Pushed:
    """The one pilot-discovery and Envoy every example goes through."""

    discovery: Discovery
    envoy: Envoy
    config_dir: Path
    generation: Iterator[int]

    def rejected(self) -> int:
        return sum(self.envoy.stats("update_rejected").values())

    def push(self, documents: list[dict[str, Any]]) -> None:
        """Write the documents with a fresh marker; return once Envoy holds the marker."""
        n = next(self.generation)
        marker = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"marker-{n}", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 9080}]},
        }
        text = yaml.safe_dump_all([marker, *documents], sort_keys=False)
        staged = self.config_dir / ".generated.yaml"  # a dot file: the registry skips it
        staged.write_text(text)
        staged.replace(self.config_dir / "generated.yaml")
        before = self.rejected()
        host = f"marker-{n}.default.svc.cluster.local"

        def applied() -> str | None:
            if self.rejected() != before:
                return "rejected"
            dump = self.envoy.config_dump()
            cluster = f"outbound|9080||{host}" in dynamic_names(dump)["clusters"]
            routes = route_names(dump, "9080", f"{host}:9080") == ["default"]
            return "applied" if cluster and routes else None

        outcome = eventually(applied, what=f"Envoy to take push {n}", timeout=60)
        if outcome == "rejected":
            proxies = self.discovery.syncz()["proxies"]
            errors = {
                t: v["error"][:1500] for p in proxies for t, v in p["types"].items() if v["error"]
            }
            pytest.fail(f"Envoy rejected what validation accepted: {errors}\n---\n{text}")


@pytest.fixture(scope="module")
def pushed() -> Iterator[Pushed]:
    with workdir() as work:
        config_dir = work / "config"
        config_dir.mkdir()
        shutil.copy(MESH, config_dir / "mesh.yaml")
        discovery = Discovery(config_dir, work).start()
        envoy = Envoy(
            discovery.address,
            work,
            name="productpage-v1-a",
            ip="10.1.0.5",
            labels={"app": "productpage", "version": "v1"},
            cluster_stats=True,  # keeps the per-cluster EDS update_rejected counters
        ).start()
        try:
            envoy.wait_live()
            yield Pushed(discovery, envoy, config_dir, itertools.count())
        finally:
            envoy.stop()
            discovery.stop()


def _accepted(kind: str, spec: Any) -> dict[str, Any] | None:
    document = {
        "apiVersion": "networking.istio.io/v1",
        "kind": kind,
        "metadata": {"name": "generated", "namespace": "default"},
        "spec": spec,
    }
    try:
        parse_resource(document)
    except ValidationError:
        return None
    return document


@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=90),  # a push on a busy 2-core machine; most take ~1 s
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    database=None,
)
@given(vs=spec_for(VirtualServiceSpec), dr=spec_for(DestinationRuleSpec))
def test_envoy_acks_every_virtual_service_and_destination_rule_validation_accepts(
    pushed: Pushed, vs: Any, dr: Any
) -> None:
    documents = [
        d for d in (_accepted("VirtualService", vs), _accepted("DestinationRule", dr)) if d
    ]
    assume(documents)
    pushed.push(documents)
