"""The install commands' command line, without a cluster: dry runs and the errors users meet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from istiolite.testing.mesh import free_port
from tests.install.support import run


def test_dry_run_prints_applicable_yaml_and_needs_no_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    result = run("install", "--dry-run", "--set", "tag=1.2.3")
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.output))
    assert [o["kind"] for o in objects] == [
        "Namespace",
        *["CustomResourceDefinition"] * 5,
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Secret",
        "Deployment",
        "Service",
        "ServiceAccount",  # the ingress gateway's three
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
    ]
    istiod, gateway = [o for o in objects if o["kind"] == "Deployment"]
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"] == ("istiolite/pilot:1.2.3")
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "istiolite/proxy:1.2.3"
    )


def test_an_unknown_set_key_is_a_usage_error_listing_the_accepted_keys() -> None:
    result = run("install", "--dry-run", "--set", "replica=2")
    assert result.exit_code == 2
    assert (
        "Error: --set replica=2: unknown key 'replica'; accepted keys: hub, tag," in result.output
    )


def test_an_unreachable_cluster_is_one_clear_line(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    for command in ("install", "uninstall", "verify-install"):
        result = run(command, kubeconfig=kubeconfig)
        assert result.exit_code == 1
        assert result.output.startswith(
            f"Error: cannot reach the Kubernetes API server at {server}: "
        ), result.output
        assert len(result.output.splitlines()) == 1


def test_a_missing_kubeconfig_says_what_to_give(tmp_path: Path) -> None:
    result = run("verify-install", kubeconfig=tmp_path / "absent")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no kubeconfig at {tmp_path / 'absent'}: give --kubeconfig PATH or set KUBECONFIG\n"
    )


def test_a_bad_timeout_is_a_usage_error() -> None:
    result = run("install", "--wait", "--timeout", "5 minutes")
    assert result.exit_code == 2
    assert "Invalid value for '--timeout': must be a duration such as" in result.output
