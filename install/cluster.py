"""The installer's edge: every call to the Kubernetes API, through lightkube's synchronous client.

Objects are written with server-side apply under the field manager `istiolite`, so installing
again sends the same intent and the API server reports no change, and a field another tool
took over is a conflict named in the error (`--force` takes it back) instead of a silent fight.

Every failure leaves here as `InstallError` with one line a user can act on: which object,
and what the API server said (a 403 names the verb and the resource), or which server could
not be reached. The command line prints it without a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.resource_registry import resource_registry
from lightkube.resources.core_v1 import Pod

from istiolite.api.duration import format_duration
from istiolite.install import manifests, status
from istiolite.install.manifests import Json, Ref

FIELD_MANAGER = "istiolite"
DEFAULT_KUBECONFIG = Path("~/.kube/config")
CRD_TIMEOUT = timedelta(seconds=60)  # the API server establishes a CRD in about a second
POLL = 0.5


class InstallError(Exception):
    """A failure to report in one line."""


def kube_config(explicit: Path | None) -> KubeConfig:
    """kubectl's order: --kubeconfig, the first file in $KUBECONFIG, ~/.kube/config, then the
    pod's service account (the installer may itself run in a cluster)."""
    if explicit is not None:
        candidates = [explicit]
    elif env := os.environ.get("KUBECONFIG"):
        candidates = [Path(p) for p in env.split(os.pathsep) if p]
    else:
        candidates = [DEFAULT_KUBECONFIG]
    for path in candidates:
        if path.expanduser().is_file():
            try:
                return KubeConfig.from_file(path)
            except (ConfigError, ValueError, KeyError, TypeError) as e:
                raise InstallError(f"cannot use kubeconfig {path}: {e}") from e
    if explicit is None:
        with contextlib.suppress(ConfigError, KeyError):
            return KubeConfig.from_service_account()
    looked = ", ".join(str(p) for p in candidates)
    raise InstallError(f"no kubeconfig at {looked}: give --kubeconfig PATH or set KUBECONFIG")


@dataclass
class Cluster:
    client: Client
    server: str

    @classmethod
    def connect(cls, kubeconfig: Path | None) -> Cluster:
        config = kube_config(kubeconfig)
        try:
            single = config.get()
        except ConfigError as e:
            raise InstallError(f"cannot use the kubeconfig: {e}") from e
        if single is None:
            raise InstallError("the kubeconfig has no current context")
        server = single.cluster.server
        # Like kubectl, honour HTTPS_PROXY/NO_PROXY: a user's cluster may be behind a proxy.
        return cls(Client(config, field_manager=FIELD_MANAGER), server)

    def close(self) -> None:
        self.client.close()

    @contextlib.contextmanager
    def calling(self, action: str) -> Iterator[None]:
        """Turn the client's exceptions into one line that says what was being done."""
        try:
            yield
        except ApiError as e:
            raise InstallError(f"{action}: {_api_message(e, self.server)}") from e
        except httpx2.TransportError as e:
            reason = str(e) or type(e).__name__
            raise InstallError(
                f"cannot reach the Kubernetes API server at {self.server}: {reason}"
            ) from e

    def get(self, ref: Ref) -> Json | None:
        with self.calling(f"reading {ref}"):
            try:
                obj = self.client.get(_resource(ref), ref.name, namespace=ref.namespace)
            except ApiError as e:
                if e.status.code == 404:
                    return None
                raise
        return _dict(obj)

    def apply(self, obj: Json, *, force: bool) -> str:
        """Apply `obj`; say whether it was created, configured (changed) or unchanged."""
        ref = manifests.ref(obj)
        before = self.get(ref)
        with self.calling(f"applying {ref}"):
            after = _dict(self.client.apply(from_dict(obj), force=force))
        if before is None:
            return "created"
        same = _version(before) == _version(after)
        return "unchanged" if same else "configured"

    def delete(self, ref: Ref) -> bool:
        """Delete `ref`; False when it was already gone."""
        with self.calling(f"deleting {ref}"):
            try:
                self.client.delete(_resource(ref), ref.name, namespace=ref.namespace)
            except ApiError as e:
                if e.status.code == 404:
                    return False
                raise
        return True

    def pods(self, deployment: Ref) -> list[Json]:
        """The pods of one of the installed Deployments, by its selector."""
        with self.calling(f"listing the {deployment.name} pods"):
            labels: dict[str, Any] = dict(manifests.selector_of(deployment))
            found = self.client.list(Pod, namespace=deployment.namespace, labels=labels)
            return [_dict(p) for p in found]

    def secret_data(self) -> dict[str, bytes] | None:
        """The webhook Secret's data, decoded; None when there is no such Secret."""
        secret = self.get(Ref("v1", "Secret", manifests.SECRET, manifests.NAMESPACE))
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def wait_established(self, ref: Ref, *, timeout: timedelta = CRD_TIMEOUT) -> None:
        _wait(
            lambda: status.established(self._must_get(ref)),
            timeout=timeout,
            failure=lambda problem: f"{ref} {problem} after {format_duration(timeout)}",
        )

    def wait_rolled_out(self, ref: Ref, *, timeout: timedelta) -> None:
        def failure(problem: str) -> str:
            lines = [f"{ref} is not available after {format_duration(timeout)}: {problem}"]
            lines += [f"  {c}" for c in status.conditions(self._must_get(ref))]
            pods = self.pods(ref)
            lines += [f"  {p}" for p in status.pod_problems(pods, name=ref.name)]
            return "\n".join(lines)

        _wait(lambda: status.rollout(self._must_get(ref)), timeout=timeout, failure=failure)

    def _must_get(self, ref: Ref) -> Json:
        obj = self.get(ref)
        if obj is None:
            raise InstallError(f"{ref} disappeared while waiting for it")
        return obj


def _wait(
    problem: Callable[[], str | None], *, timeout: timedelta, failure: Callable[[str], str]
) -> None:
    """Poll `problem` until it is None; after `timeout`, fail with its last answer."""
    deadline = time.monotonic() + timeout.total_seconds()
    while (last := problem()) is not None:
        if time.monotonic() >= deadline:
            raise InstallError(failure(last))
        time.sleep(POLL)


def _resource(ref: Ref) -> Any:
    return resource_registry.load(ref.api_version, ref.kind)


def _dict(obj: Any) -> Json:
    return dict(obj.to_dict())


def _version(obj: Json) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _api_message(e: ApiError, server: str) -> str:
    code, message = e.status.code, e.status.message or e.status.reason
    if code == 401:
        return f"unauthorized: {server} does not accept the kubeconfig's credentials"
    if code == 409 and "conflict" in str(message).lower():
        return f"{message} (another field manager owns these fields; --force takes them over)"
    return str(message)
