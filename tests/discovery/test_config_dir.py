"""pilot-discovery --config-dir survives whatever lands in its directory, or happens to it.

Each test runs the real pilot-discovery process. Before these fixes a non-UTF-8 file at startup
exited it with a traceback, and at runtime killed its watch silently; a FIFO blocked its event
loop; a symlink to /dev/zero was read without end; an unreadable subdirectory kept the watch
from ever starting; `rm -rf` of the directory emptied the mesh and its return went unnoticed;
and a large file stalled /ready and every other edit while it was parsed on the event loop.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from istiolite.api import parse_yaml
from istiolite.testing.mesh import Discovery, Envoy, acked_all, dynamic_names
from istiolite.testing.wait import eventually
from tests.hostile import HOSTILE, made

TESTDATA = Path(__file__).parent / "testdata"
MESH = (TESTDATA / "mesh.yaml").read_text()
MESH_COUNTS = Counter(p.resource.KIND for p in parse_yaml(MESH) if p.resource is not None)
# Without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, root obeys file permissions as anyone does.
AS_ANYONE = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]
needs_permissions = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run pilot-discovery without permission overrides",
)


def service(name: str) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
        f"spec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}]\n"
    )


def configz(discovery: Discovery) -> dict[str, Any]:
    return dict(discovery.get("/debug/configz").json())


def counts(discovery: Discovery) -> Counter[str]:
    return Counter(configz(discovery)["resources"])


def served(discovery: Discovery, expected: Counter[str]) -> bool:
    return counts(discovery) == expected


@pytest.fixture
def start(work: Path, config_dir: Path) -> Iterator[Callable[..., Discovery]]:
    """Starts pilot-discovery on config_dir (holding mesh.yaml), and stops it after the test."""
    (config_dir / "mesh.yaml").write_text(MESH)
    started: list[Discovery] = []

    def run(**options: Any) -> Discovery:
        started.append(Discovery(config_dir, work, **options))
        return started[-1].start()

    yield run
    for discovery in started:
        discovery.stop()


def test_files_it_cannot_use_at_startup_are_reported_and_the_rest_is_served(
    start: Callable[..., Discovery], config_dir: Path
) -> None:
    bad = made(config_dir)
    discovery = start()
    errors = configz(discovery)["errors"]
    for name, path in bad.items():
        assert HOSTILE[name].says in errors[str(path)][0], (name, errors.get(str(path)))
    assert counts(discovery) == MESH_COUNTS


def test_files_it_cannot_use_arriving_are_reported_and_later_edits_still_apply(
    start: Callable[..., Discovery], config_dir: Path
) -> None:
    discovery = start()
    bad = made(config_dir)
    eventually(
        lambda: set(map(str, bad.values())) <= set(configz(discovery)["errors"]),
        what="every file that cannot be used to be reported",
    )
    errors = configz(discovery)["errors"]
    for name, path in bad.items():
        assert HOSTILE[name].says in errors[str(path)][0], (name, errors[str(path)])
    assert discovery.get("/ready").status_code == 200
    assert counts(discovery) == MESH_COUNTS
    (config_dir / "extra.yaml").write_text(service("extra"))
    expected = MESH_COUNTS + Counter({"Service": 1})
    eventually(lambda: served(discovery, expected), what="a later edit to be applied")


def _moved_away(directory: Path) -> None:
    directory.rename(directory.with_name("elsewhere"))


def _replaced_by_a_file(directory: Path) -> None:
    shutil.rmtree(directory)
    directory.write_text("a file now\n")


@pytest.mark.parametrize(
    "vanish",
    [shutil.rmtree, _moved_away, _replaced_by_a_file],
    ids=["removed", "moved-away", "replaced-by-a-file"],
)
def test_the_mesh_outlives_its_directory_and_a_new_directory_is_read(
    start: Callable[..., Discovery], config_dir: Path, vanish: Callable[[Path], None]
) -> None:
    discovery = start()
    vanish(config_dir)
    eventually(
        lambda: not configz(discovery)["configDir"]["present"],
        what="the directory to be missed",
    )
    assert counts(discovery) == MESH_COUNTS
    assert discovery.get("/ready").status_code == 200
    assert discovery.metrics()["pilot_config_dir_watching"] == 0
    assert f"{config_dir} is gone or not a directory" in discovery.log.read_text()

    if config_dir.is_file():
        config_dir.unlink()
    config_dir.mkdir()
    (config_dir / "one.yaml").write_text(service("one"))
    eventually(lambda: served(discovery, Counter({"Service": 1})), what="the new directory")
    assert configz(discovery)["configDir"]["present"]
    eventually(lambda: discovery.metrics()["pilot_config_dir_watching"] == 1, what="a watch")
    (config_dir / "two.yaml").write_text(service("two"))
    eventually(lambda: served(discovery, Counter({"Service": 2})), what="the new directory watched")


def test_a_directory_moved_in_or_out_brings_or_takes_its_files(
    start: Callable[..., Discovery], config_dir: Path, work: Path
) -> None:
    discovery = start()
    outside = work / "team"
    outside.mkdir()
    (outside / "a.yaml").write_text(service("a"))
    (outside / "b.yaml").write_text(service("b"))
    outside.rename(config_dir / "team")
    with_team = MESH_COUNTS + Counter({"Service": 2})
    eventually(lambda: served(discovery, with_team), what="the moved-in directory's files")
    (config_dir / "team").rename(work / "team")
    eventually(lambda: served(discovery, MESH_COUNTS), what="the moved-out directory's files gone")


@needs_permissions
def test_what_cannot_be_read_for_permissions_is_reported_and_read_once_it_can_be(
    start: Callable[..., Discovery], config_dir: Path
) -> None:
    sub = config_dir / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text(service("a"))
    sub.chmod(0)
    try:
        discovery = start(wrapper=AS_ANYONE)
        assert "Permission denied" in configz(discovery)["errors"][str(sub)][0]
        (config_dir / "extra.yaml").write_text(service("extra"))
        expected = MESH_COUNTS + Counter({"Service": 1})
        eventually(lambda: served(discovery, expected), what="the watch to work without sub/")

        sub.chmod(0o755)
        expected += Counter({"Service": 1})
        eventually(lambda: served(discovery, expected), what="sub/ to be read once it can be")
        (sub / "b.yaml").write_text(service("b"))
        expected += Counter({"Service": 1})
        eventually(lambda: served(discovery, expected), what="sub/ to be watched")

        mesh = config_dir / "mesh.yaml"
        mesh.chmod(0)
        eventually(
            lambda: "Permission denied" in str(configz(discovery)["errors"].get(str(mesh))),
            what="an unreadable file to be reported",
        )
        assert counts(discovery) == expected
        mesh.chmod(0o644)
        eventually(lambda: str(mesh) not in configz(discovery)["errors"], what="it to be read")
    finally:
        sub.chmod(0o755)


@needs_permissions
def test_a_directory_made_unreadable_keeps_its_configuration_and_is_read_again(
    start: Callable[..., Discovery], config_dir: Path
) -> None:
    discovery = start(wrapper=AS_ANYONE)
    config_dir.chmod(0)
    try:
        eventually(
            lambda: "Permission denied" in str(configz(discovery)["errors"].get(str(config_dir))),
            what="the unreadable directory to be reported",
        )
        assert counts(discovery) == MESH_COUNTS
        (config_dir.parent / "extra.yaml").write_text(service("extra"))
    finally:
        config_dir.chmod(0o755)
    (config_dir.parent / "extra.yaml").rename(config_dir / "extra.yaml")
    expected = MESH_COUNTS + Counter({"Service": 1})
    eventually(lambda: served(discovery, expected), what="the directory read and watched again")
    eventually(lambda: not configz(discovery)["errors"], what="the directory readable again")


def _large(config_maps: int) -> str:
    """One Service and many ConfigMaps: seconds to parse, but no more config for the proxies
    than one service, so that building and pushing it stays quick."""
    maps = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: map-{i}, namespace: default}}\n"
        f"data: {{key: value-{i}, other: other-{i}}}\n"
        for i in range(config_maps)
    )
    return "---\n".join([service("big"), *maps])


@pytest.mark.envoy
def test_a_large_file_is_parsed_while_readiness_and_other_edits_go_on(
    start: Callable[..., Discovery], config_dir: Path, work: Path
) -> None:
    discovery = start(extra_args=["--log-level=debug"])
    envoy = Envoy(discovery.address, work, name="productpage-v1-a", ip="10.1.0.5")
    envoy.start()
    try:
        envoy.wait_live()
        eventually(lambda: acked_all(_row(discovery)), what="the Envoy in sync")
        big = config_dir / "big.yaml"
        big.write_text(_large(20_000))  # ~2.6 MB: seconds of parsing
        assert discovery.get("/ready").status_code == 200
        (config_dir / "extra.yaml").write_text(service("extra"))

        def clusters() -> set[str] | None:
            names = dynamic_names(envoy.config_dump())["clusters"]
            return names if "outbound|80||extra.default.svc.cluster.local" in names else None

        seen = eventually(clusters, what="the small edit to reach the Envoy", timeout=60)
        assert not any("big.default" in name for name in seen), _tail(discovery.log)
        eventually(
            lambda: counts(discovery)["ConfigMap"] == 20_000, what="the large file", timeout=300
        )
        # The push's latency counts from the file's event, so it includes the parse.
        parse_ms, push_ms = eventually(lambda: _parse_then_push(discovery.log, big), what="logs")
        assert push_ms >= parse_ms, _tail(discovery.log)
    finally:
        envoy.stop()


def _tail(log: Path) -> str:
    return "\n".join([line for line in log.read_text().splitlines() if "istiolite" in line][-30:])


def _row(discovery: Discovery) -> dict[str, Any] | None:
    rows: list[dict[str, Any]] = discovery.syncz()["proxies"]
    return rows[0] if rows else None


def _parse_then_push(log: Path, path: Path) -> tuple[float, float] | None:
    """How long `path` took to read and parse, and the latency the push after it reported."""
    text = log.read_text()
    read = re.search(rf"read {re.escape(str(path))} in (\d+) ms: Content", text)
    if read is None:
        return None
    push = re.search(r"pushing generation \d+: .* \((\d+) ms after the change", text[read.end() :])
    return (float(read[1]), float(push[1])) if push else None
