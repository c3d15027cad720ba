"""Where pilot-discovery finds its cluster: --kubeconfig, else the in-cluster service account."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from istiolite.discovery.kube import kube_config


def test_a_kubeconfig_file_gives_its_current_context(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = kube_config(path).get()
    assert config is not None and config.cluster.server == "https://127.0.0.1:6443"


def test_outside_a_cluster_without_a_kubeconfig_discovery_says_what_to_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SystemExit, match="give --kubeconfig PATH or --config-dir DIR"):
        kube_config(None)
