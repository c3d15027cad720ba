"""`istiolite kube-inject`: the webhook's mutation applied offline to manifests.

A Pod is injected as the webhook would inject it; a workload's pod template is injected in
place (the template is pod-shaped: metadata and spec). Other kinds pass through unchanged, so
a whole application's YAML can be piped through. Namespace labels are unknown offline, so
only the pods' own opt-out is honoured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from istiolite.api.yamlstream import Loader, YamlError, load_all
from istiolite.discovery.inject.errors import InjectionError
from istiolite.discovery.inject.mutate import inject
from istiolite.discovery.inject.template import SidecarValues

Json = dict[str, Any]

# Where each kind keeps the pod it creates.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class _KubeLoader(Loader):
    """YAML read as Kubernetes reads it: an unquoted `2024-01-01` stays a string."""


_KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in Loader.yaml_implicit_resolvers.items()
}


class _KubeDumper(yaml.SafeDumper):
    """Multi-line strings (scripts, embedded config) written as literal blocks, as people do."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_KubeDumper.add_representer(str, _represent_str)


def inject_manifest(text: str, values: SidecarValues) -> str:
    """Inject every workload of a multi-document YAML stream; empty documents are dropped."""
    try:
        documents = load_all(text, loader=_KubeLoader)
    except YamlError as e:
        where = f"line {e.line}" if e.line else "input"
        raise InjectionError(where, f"not YAML: {e.problem}") from None
    injected = []
    for index, document in enumerate(documents):
        try:
            injected.append(inject_object(document, values))
        except InjectionError as e:
            where = f"document {index + 1} ({_title(document)}): {e.path}"
            raise InjectionError(where, e.message) from None
    return yaml.dump_all(injected, Dumper=_KubeDumper, sort_keys=False, width=1 << 16)


def inject_object(obj: object, values: SidecarValues) -> Any:
    """A copy of a Kubernetes object with its pod (template) injected; other kinds unchanged."""
    if not isinstance(obj, dict):
        return obj
    if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        return {**obj, "items": [inject_object(item, values) for item in obj["items"]]}
    kind = obj.get("kind")
    path = POD_TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    if path is None:
        return obj
    return _replace_at(obj, path, lambda pod: inject(pod, values))


def _replace_at(obj: Json, path: tuple[str, ...], change: Callable[[Json], Json]) -> Json:
    """`obj` with the object at `path` replaced by `change(it)`; copies only along the path."""
    if not path:
        return change(obj)
    head, rest = path[0], path[1:]
    inner = obj.get(head)
    if not isinstance(inner, dict):
        raise InjectionError(".".join(path), "must be an object")
    try:
        return {**obj, head: _replace_at(inner, rest, change)}
    except InjectionError as e:
        raise InjectionError(f"{head}.{e.path}", e.message) from None


def _title(document: object) -> str:
    if not isinstance(document, Mapping):
        return type(document).__name__
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"{document.get('kind', 'no kind')} {name or '(no name)'}"
