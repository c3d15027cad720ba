"""`istiolite kube-inject`: workload kinds, pass-through, errors, and the command itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from istiolite.cli import main
from istiolite.discovery.inject import (
    POD_TEMPLATE_PATHS,
    InjectionError,
    inject_manifest,
    inject_object,
)
from tests.inject.reviews import pod
from tests.inject.support import VALUES

Json = dict[str, Any]


def _workload(kind: str) -> Json:
    """A minimal object of `kind` with the test pod at its template path."""
    node: Json = {"metadata": pod()["metadata"], "spec": pod()["spec"]}
    for key in reversed(POD_TEMPLATE_PATHS[kind]):
        node = {key: node}
    return {"apiVersion": "v1", "kind": kind, **node}


def _template(obj: Json) -> Json:
    node = obj
    for key in POD_TEMPLATE_PATHS[obj["kind"]]:
        node = node[key]
    return node


@pytest.mark.parametrize("kind", sorted(POD_TEMPLATE_PATHS))
def test_every_workload_kind_gets_its_pod_template_injected(kind: str) -> None:
    injected = inject_object(_workload(kind), VALUES)
    names = [c["name"] for c in _template(injected)["spec"]["containers"]]
    assert names == ["web", "istio-proxy"]


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Service", "spec": {"containers": [{"name": "not-a-pod"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "spec": {}},
        ["not", "an", "object"],
        "text",
    ],
)
def test_other_kinds_pass_through_unchanged(obj: Any) -> None:
    assert inject_object(obj, VALUES) == obj


def test_a_list_has_each_item_injected() -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [_workload("Deployment"), _workload("Pod")],
    }
    injected = inject_object(listed, VALUES)
    for item in injected["items"]:
        assert _template(item)["spec"]["containers"][-1]["name"] == "istio-proxy"


def test_a_manifest_keeps_document_order_and_drops_empty_documents() -> None:
    text = "---\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n" + yaml.safe_dump(
        _workload("Job")
    )
    documents = list(yaml.safe_load_all(inject_manifest(text, VALUES)))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Job"]


def test_unquoted_dates_stay_strings_as_kubernetes_reads_them() -> None:
    text = "kind: ConfigMap\ndata:\n  since: 2024-01-01\n"
    assert "since: '2024-01-01'" in inject_manifest(text, VALUES)


def test_errors_name_the_document_and_the_field_inside_it() -> None:
    bad = _workload("Deployment")
    bad["metadata"] = {"name": "reviews"}
    bad["spec"]["template"]["metadata"]["annotations"] = {"sidecar.istio.io/proxyCPU": "lots"}
    text = "kind: ConfigMap\n---\n" + yaml.safe_dump(bad)
    with pytest.raises(InjectionError) as caught:
        inject_manifest(text, VALUES)
    assert str(caught.value).startswith(
        "document 2 (Deployment reviews): "
        "spec.template.metadata.annotations['sidecar.istio.io/proxyCPU']: 'lots'"
    )


def test_a_workload_without_a_template_is_refused() -> None:
    with pytest.raises(
        InjectionError, match=r"spec\.jobTemplate\.spec\.template: must be an object"
    ):
        inject_object({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {}}}}, VALUES)


def test_command_reads_a_file_and_writes_injected_yaml(tmp_path: Path) -> None:
    source = tmp_path / "app.yaml"
    source.write_text(yaml.safe_dump(_workload("Deployment")))
    result = CliRunner().invoke(
        main, ["kube-inject", "-f", str(source), "--proxy-image", "r/p:1", "--native-sidecar"]
    )
    assert result.exit_code == 0, result.output
    template = _template(yaml.safe_load(result.output))
    assert [c["name"] for c in template["spec"]["initContainers"]] == ["istio-init", "istio-proxy"]
    assert template["spec"]["initContainers"][1]["image"] == "r/p:1"


def test_command_reads_standard_input() -> None:
    result = CliRunner().invoke(
        main,
        ["kube-inject", "-f", "-", "--hold-application-until-proxy-starts"],
        input=yaml.safe_dump(pod()),
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["spec"]["containers"][0]["name"] == "istio-proxy"


def test_command_fails_with_the_reason_and_exit_code_1() -> None:
    result = CliRunner().invoke(main, ["kube-inject", "-f", "-"], input="kind: Pod\nspec: [\n")
    assert result.exit_code == 1
    assert "Error: <stdin>: line 3: not YAML: " in result.output
