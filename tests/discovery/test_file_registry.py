"""The file registry re-parses only the documents of a file that changed, and reads as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from istiolite.api import Resource, parse_yaml
from istiolite.discovery.files import FileRegistry
from istiolite.discovery.files.registry import split_documents


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
    return FileRegistry(tmp_path, lambda: None)


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
