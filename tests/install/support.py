"""Shared by the installer's tests: the command line, and identities other than the admin."""

from __future__ import annotations

import typing
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from lightkube import Client, KubeConfig
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from istiolite.cli import main


def run(*args: str, kubeconfig: Path | None = None) -> Result:
    argv = [*args, *([f"--kubeconfig={kubeconfig}"] if kubeconfig else [])]
    return CliRunner().invoke(main, argv, catch_exceptions=False)


def admin(kubeconfig: Path) -> Client:
    return Client(KubeConfig.from_file(kubeconfig), field_manager="istiolite-test", trust_env=False)


def token_kubeconfig(kubeconfig: Path, *, namespace: str, account: str, out: Path) -> Path:
    """A kubeconfig for a ServiceAccount's real identity: a token from the TokenRequest API,
    as the kubelet would mount it into the account's pods."""
    with admin(kubeconfig) as client:
        token = client.create(
            ServiceAccount.Token(metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[])),
            account,
            namespace=namespace,
        )
    assert token.status is not None
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token.status.token}}]
    for context in config["contexts"]:
        context["context"]["user"] = account
    out.write_text(yaml.safe_dump(config))
    return out


def json(obj: object) -> dict[str, typing.Any]:
    return dict(typing.cast(typing.Any, obj).to_dict())
