"""Every config a real Envoy rejects is seen: in /debug/syncz, in `pilot_total_xds_rejects`
and in the log, once per proxy, type and version however often Envoy repeats the NACK.

Each case is a config a real Envoy 1.40 rejects, one per xDS type. Each Envoy is then
restarted: the new one rejects the same versions again, which must not count or log again.

Validation refuses every cluster setting Envoy would reject (a maglev table size that is not
prime among them), so for CDS the test reaches past it: pilot-discovery runs with a
`sitecustomize` that makes the translator write the DestinationRule's table size 65537 as 100,
which Envoy rejects ("must be prime"). Everything else is the real program.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from istiolite.testing.mesh import Discovery, Envoy, acked_all
from istiolite.testing.wait import eventually

pytestmark = pytest.mark.envoy

NEW_SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  clusterIP: 10.96.0.30
  selector: {app: details}
  ports: [{name: http, port: 9080}]
"""


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)

    return edit


@dataclass(frozen=True)
class Case:
    kind: str
    edit: Callable[[str], str]  # of the mesh's YAML
    error: str  # what Envoy's reason says
    runtime: dict[str, Any] = field(default_factory=dict)


# Loaded by the pilot-discovery under test (PYTHONPATH): a table size Envoy rejects.
NOT_PRIME_TABLE = """
from istiolite.discovery.translate import clusters

_load_balancer = clusters._load_balancer


def _not_prime(cluster, lb):
    _load_balancer(cluster, lb)
    if cluster.maglev_lb_config.table_size.value == 65539:
        cluster.maglev_lb_config.table_size.value = 100


clusters._load_balancer = _not_prime
"""


CASES = [
    # The DestinationRule's table size goes from 65537 to 65539 (both prime, both valid); the
    # translator under test then writes 100, as a translation bug would (module docstring).
    Case("CDS", replace("tableSize: 65537", "tableSize: 65539"), "maglev must be prime"),
    # A WorkloadEntry may have a DNS name for an address, which EDS cannot carry.
    Case(
        "EDS",
        replace("address: 10.2.0.5", "address: ratings-vm.example.com"),
        "malformed IP address",
    ),
    # Two Services on one cluster IP and TCP port: two listeners of one name.
    Case(
        "LDS",
        lambda text: (
            text + "---\napiVersion: v1\nkind: Service\n"
            "metadata: {name: mysql-alias, namespace: default}\n"
            "spec:\n  clusterIP: 10.96.0.20\n  ports: [{name: tcp-mysql, port: 3306}]\n"
        ),
        "duplicate listener",
    ),
    # A regex discovery rightly finds valid, for an Envoy configured with a smaller limit.
    Case(
        "RDS",
        lambda text: (
            text + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: productpage, namespace: default}\n"
            "spec:\n  hosts: [productpage]\n  http:\n  - name: regex\n"
            "    match: [{uri: {regex: "
            "'^/ratings/[0-9]+/(summary|details|ratings|votes)/[a-z]+/[0-9]+$'}}]\n"
            "    route: [{destination: {host: productpage}}]\n"
        ),
        "max program size",
        runtime={"re2.max_program_size.error_level": 40},
    ),
]


@pytest.fixture
def discovery(work: Path, config_dir: Path) -> Iterator[Discovery]:
    """pilot-discovery with the NOT_PRIME_TABLE translator (module docstring)."""
    shutil.copy(Path(__file__).parent / "testdata" / "mesh.yaml", config_dir / "mesh.yaml")
    hooks = work / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(NOT_PRIME_TABLE)
    started = Discovery(config_dir, work, env={"PYTHONPATH": str(hooks)}).start()
    yield started
    started.stop()


@pytest.fixture
def productpage(
    discovery: Discovery, work: Path, request: pytest.FixtureRequest
) -> Iterator[Envoy]:
    case: Case = request.param
    envoy = Envoy(
        discovery.address,
        work,
        name="productpage-v1-a",
        ip="10.1.0.5",
        labels={"app": "productpage"},
        runtime=case.runtime,
    ).start()
    yield envoy
    envoy.stop()


def row(discovery: Discovery) -> dict[str, Any] | None:
    rows = discovery.syncz()["proxies"]
    return rows[0] if len(rows) == 1 else None


def rejected(discovery: Discovery, kind: str) -> dict[str, Any] | None:
    """The proxy's state of one type once the version last sent is the one it NACKed."""
    found = row(discovery)
    state = found["types"].get(kind) if found else None
    return state if state and state["nacked"] and state["nacked"] == state["sent"] else None


def rejects(discovery: Discovery) -> dict[str, float]:
    return {
        k: v
        for k, v in discovery.metrics().items()
        if k.startswith("pilot_total_xds_rejects")
        and not k.startswith("pilot_total_xds_rejects_created")
    }


@pytest.mark.parametrize("productpage", CASES, ids=[c.kind for c in CASES], indirect=True)
def test_a_rejected_config_is_reported_once(
    discovery: Discovery, config_dir: Path, productpage: Envoy, request: pytest.FixtureRequest
) -> None:
    case: Case = request.node.callspec.params["productpage"]
    productpage.wait_live()
    eventually(lambda: acked_all(row(discovery)), what="the proxy to ACK every type")
    mesh = config_dir / "mesh.yaml"
    mesh.write_text(case.edit(mesh.read_text()))

    state = eventually(lambda: rejected(discovery, case.kind), what=f"the {case.kind} NACK")
    assert case.error in state["error"], state
    assert state["acked"] != state["nacked"]
    version = state["nacked"]
    assert rejects(discovery) == {f'pilot_total_xds_rejects{{type="{case.kind.lower()}"}}': 1}

    # A new Envoy of the same proxy rejects the same version again: the same rejection.
    productpage.stop()
    eventually(lambda: not discovery.syncz()["proxies"], what="the proxy to disconnect")
    productpage.start()
    eventually(lambda: rejected(discovery, case.kind), what=f"the {case.kind} NACK again")
    assert rejects(discovery) == {f'pilot_total_xds_rejects{{type="{case.kind.lower()}"}}': 1}
    lines = re.findall(f"rejected {case.kind} version {version}.*", discovery.log.read_text())
    assert len(lines) == 1, lines
    assert "\n" not in lines[0] and case.error in lines[0]


@pytest.mark.parametrize("productpage", CASES[:1], ids=["CDS"], indirect=True)
def test_a_cds_answer_envoy_holds_is_reported(
    discovery: Discovery, config_dir: Path, productpage: Envoy
) -> None:
    """Envoy sends no CDS answer while clusters warm, and 1.40 leaves a maglev cluster it
    rejected warming: rejected with a cluster that warms, that NACK never comes. What shows
    is that Envoy took the endpoints sent after it and still does not answer."""
    productpage.wait_live()
    eventually(lambda: acked_all(row(discovery)), what="the proxy to ACK every type")
    mesh = config_dir / "mesh.yaml"
    mesh.write_text(CASES[0].edit(mesh.read_text()) + NEW_SERVICE)

    def seen() -> dict[str, Any] | None:
        found = row(discovery)
        cds = found["types"]["CDS"] if found else {}
        return cds if cds.get("held") or (cds["nacked"] and cds["nacked"] == cds["sent"]) else None

    cds = eventually(seen, what="the rejected CDS to be seen")
    log = discovery.log.read_text()
    if cds["held"]:  # Envoy 1.40
        assert log.count(f"has not answered CDS version {cds['sent']}") == 1
    else:  # an Envoy that sends the NACK
        assert f"rejected CDS version {cds['sent']}" in log
