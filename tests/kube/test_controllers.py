"""With `controllers=True` kube-controller-manager runs too: namespaces get their `default`
ServiceAccount and deleted namespaces finish terminating, as on a cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from istiolite.testing.apiserver import Binaries, control_plane

pytestmark = pytest.mark.kube


def test_controller_manager_runs_namespace_controllers(kube_binaries: Binaries) -> None:
    # Its own control plane: the session's runs without controllers, as envtest does.
    with (
        control_plane(kube_binaries, controllers=True) as plane,
        Client(KubeConfig.from_file(plane.kubeconfig), trust_env=False) as client,
    ):
        client.create(Namespace(metadata=ObjectMeta(name="apps")))

        wait_for(lambda: client.get(ServiceAccount, "default", namespace="apps"))
        client.delete(Namespace, "apps")
        wait_for(lambda: gone(client, "apps"))


def gone(client: Client, namespace: str) -> bool:
    try:
        client.get(Namespace, namespace)
    except ApiError as e:
        return e.status.code == 404
    return False


def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except ApiError as e:
            if e.status.code != 404:
                raise
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
