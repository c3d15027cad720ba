"""The file registry re-parses only the documents of a file that changed, reads as before, and
keeps the last good content of a file it cannot use, whatever is wrong with it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from istiolite.api import Resource, parse_yaml, resources
from istiolite.discovery.files import FileRegistry
from istiolite.discovery.files.reading import split_documents
from tests.hostile import HOSTILE, made


def service(name: str, port: int = 80) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {port}}}]
"""


@pytest.fixture
def registry(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path, lambda at: None)


def write(registry: FileRegistry, text: str, name: str = "mesh.yaml") -> list[Resource]:
    path = registry.directory / name
    path.write_text(text)
    registry.apply([path])
    return registry.resources()


def test_documents_split_at_document_start_lines_only() -> None:
    text = "a: 1\n--- \nb: |\n  ---x\n---\nc: 3\n---x: 4\n"
    assert split_documents(text) == ["a: 1\n", "--- \nb: |\n  ---x\n", "---\nc: 3\n---x: 4\n"]
    assert split_documents("%YAML 1.1\n---\na: 1\n") is None  # directives: parse it whole


def test_an_edit_parses_only_the_edited_document(registry: FileRegistry) -> None:
    before = write(registry, "---\n".join(service(n) for n in "abc"))
    edited = "---\n".join([service("a"), service("b", 8080), service("c")])
    after = write(registry, edited)
    assert after == [p.resource for p in parse_yaml(edited)]
    assert after[0] is before[0] and after[2] is before[2]
    assert after[1] is not before[1]


def test_a_document_rewritten_alike_keeps_its_object(registry: FileRegistry) -> None:
    (before,) = write(registry, service("a"))
    (after,) = write(registry, "# a comment now\n" + service("a"))
    assert after is before


@pytest.mark.parametrize(
    "bad",
    [
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {}\n",
        "kind: [unclosed\n",
    ],
)
def test_a_bad_document_keeps_the_file_and_reports_as_for_the_whole_file(
    registry: FileRegistry, bad: str
) -> None:
    good = "---\n".join(service(n) for n in "ab")
    before = write(registry, good)
    path = str(registry.directory / "mesh.yaml")
    assert write(registry, good + "---\n" + bad) == before
    whole = parse_yaml(good + "---\n" + bad, source=path)
    assert registry.errors() == {path: [str(p.error) for p in whole if p.error]}


def test_files_with_directives_or_nothing_read_as_before(registry: FileRegistry) -> None:
    assert [r.meta.name for r in write(registry, "%YAML 1.1\n---\n" + service("a"))] == ["a"]
    assert write(registry, "# nothing here\n") == []
    assert write(registry, "") == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_file_that_cannot_be_used_is_reported_and_the_rest_is_read(
    registry: FileRegistry, name: str
) -> None:
    before = write(registry, service("a"))
    made_ = made(registry.directory, [name])
    if not made_:
        pytest.skip(f"cannot make {name} here")
    path = made_[name]
    registry.apply([path])
    assert registry.resources() == before
    [message] = registry.errors()[str(path)]
    assert HOSTILE[name].says in message


@pytest.mark.parametrize("name", sorted(n for n, h in HOSTILE.items() if h.content))
def test_a_bad_edit_keeps_the_last_good_content_of_the_file(
    registry: FileRegistry, name: str
) -> None:
    before = write(registry, service("a"))
    path = registry.directory / "mesh.yaml"
    path.unlink()
    HOSTILE[name].make(path)
    registry.apply([path])
    assert registry.resources() == before
    assert HOSTILE[name].says in registry.errors()[str(path)][0]


def test_a_file_touched_but_not_changed_is_neither_parsed_nor_reported_again(
    registry: FileRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
    write(registry, service("a"), "good.yaml")
    write(registry, bad, "bad.yaml")
    parsed: list[object] = []
    real = resources.parse_resource

    def parse_resource(doc: object) -> Resource:
        parsed.append(doc)
        return real(doc)

    monkeypatch.setattr(resources, "parse_resource", parse_resource)
    caplog.clear()
    for _ in range(3):
        for name in ("good.yaml", "bad.yaml"):
            os.utime(registry.directory / name)
            registry.apply([registry.directory / name])
    assert parsed == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert list(registry.errors()) == [str(registry.directory / "bad.yaml")]


def test_a_bad_file_is_logged_once_until_its_problem_changes(
    registry: FileRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    path = registry.directory / "mesh.yaml"
    for text in ["a: !!float x\n", "a: !!float x\n# same problem, other bytes\n", "a: ["]:
        path.write_text(text)
        registry.apply([path])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "!!float" in warnings[0] and "expected" in warnings[1]


def test_a_directory_replaced_by_a_file_takes_its_files_with_it(registry: FileRegistry) -> None:
    sub = registry.directory / "sub"
    sub.mkdir()
    write(registry, service("a"), "sub/a.yaml")
    assert [r.meta.name for r in registry.resources()] == ["a"]
    shutil.rmtree(sub)
    sub.write_text("not a directory any more\n")
    registry.apply([sub / "a.yaml", sub])
    assert registry.resources() == []
    assert registry.errors() == {}


class HeldExecutor(ThreadPoolExecutor):
    """Runs each call only once `release` is set: a read that is still going on."""

    def __init__(self) -> None:
        super().__init__(1)
        self.release = threading.Event()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        def held() -> Any:
            self.release.wait()
            return fn(*args, **kwargs)

        return super().submit(held)


async def test_a_read_overtaken_by_the_end_of_its_write_is_not_parsed_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[object] = []
    real = resources.parse_resource

    def parse_resource(doc: object) -> Resource:
        parsed.append(doc)
        return real(doc)

    monkeypatch.setattr(resources, "parse_resource", parse_resource)
    readers = HeldExecutor()
    changes: list[float] = []
    registry = FileRegistry(tmp_path, changes.append, readers=readers)
    path = tmp_path / "mesh.yaml"
    path.write_text(service("a"))
    registry.reload(path, at=1.0)  # the file's creation: its read is under way...
    await asyncio.sleep(0)
    registry.reload(path, at=2.0)  # ...when the end of the write is seen
    readers.release.set()
    await registry.settled()
    assert [r.meta.name for r in registry.resources()] == ["a"]
    assert len(parsed) == 1, "the same bytes were parsed again"
    assert changes == [1.0]  # counted from the first event
    readers.shutdown()
