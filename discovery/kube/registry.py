"""The Kubernetes registry: the mesh's resources as the API server has them, kept current.

One reflector per kind (reflector.py) keeps a store of typed resources; this class joins the
stores for pilot-discovery (`resources()`, `errors()`, the `on_change` callback) and turns
objects that fail validation into a log line and a Kubernetes Event on the object, while the
object's last good version stays in force.

The permissions this needs (for the installer's ClusterRole): list and watch `services`,
`pods`, `nodes`, `namespaces` (core), `endpointslices` (discovery.k8s.io), `virtualservices`,
`destinationrules` and `sidecars` (networking.istio.io); create `events` (core).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, ConfigError, KubeConfig

from istiolite.api import Resource, ValidationError
from istiolite.discovery.kube.events import REASON_INVALID, EventRecorder
from istiolite.discovery.kube.kinds import KINDS, Kind, convert
from istiolite.discovery.kube.reflector import DEFAULT_TUNING, Raw, Reflector, Tuning
from istiolite.discovery.kube.source import KubeSource

log = logging.getLogger(__name__)


def kube_config(kubeconfig: Path | None) -> KubeConfig:
    """The kubeconfig file's current context, or the in-cluster service account when None."""
    if kubeconfig is not None:
        return KubeConfig.from_file(kubeconfig)
    try:
        return KubeConfig.from_service_account()
    except (ConfigError, KeyError) as e:
        raise SystemExit(
            "pilot-discovery: not running in a cluster (no service account: "
            f"{e}); give --kubeconfig PATH or --config-dir DIR"
        ) from e


class KubeRegistry:
    def __init__(
        self,
        client: AsyncClient,
        on_change: Callable[[], None],
        *,
        kinds: Iterable[Kind] = KINDS,
        tuning: Tuning = DEFAULT_TUNING,
    ) -> None:
        self.client = client
        self.recorder = EventRecorder(client)
        self.reflectors = [self._reflector(kind, on_change, tuning) for kind in kinds]

    @classmethod
    def connect(cls, kubeconfig: Path | None, on_change: Callable[[], None]) -> KubeRegistry:
        # trust_env=False: proxy variables meant for workloads must not divert API traffic.
        client = AsyncClient(kube_config(kubeconfig), trust_env=False)
        # httpx2 logs every request at INFO: each page of a list, each watch reopened.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        return cls(client, on_change)

    def _reflector(self, kind: Kind, on_change: Callable[[], None], tuning: Tuning) -> Reflector:
        source = KubeSource(self.client, kind)

        def typed(raw: Raw) -> Resource:
            return convert(raw, api_version=source.api_version, kind=kind.kind)

        def invalid(raw: Raw, error: ValidationError, kept: bool) -> None:
            typed_raw = {**raw, "apiVersion": source.api_version, "kind": kind.kind}
            self._invalid(typed_raw, error, kept=kept)

        return Reflector(
            source, convert=typed, on_change=on_change, on_invalid=invalid, tuning=tuning
        )

    def _invalid(self, raw: Raw, error: ValidationError, *, kept: bool) -> None:
        problems = "; ".join(str(e) for e in error.errors)
        outcome = (
            "istiolite keeps using its last valid version"
            if kept
            else "istiolite ignores it until it is fixed"
        )
        log.warning("%s is invalid, %s: %s", error.resource, outcome, problems)
        self.recorder.warn(raw, reason=REASON_INVALID, message=f"invalid, {outcome}: {problems}")

    def resources(self) -> list[Resource]:
        return [r for reflector in self.reflectors for r in reflector.store.values()]

    def errors(self) -> dict[str, list[str]]:
        return {
            f"{reflector.kind} {key}": [str(e) for e in failure.error.errors]
            for reflector in self.reflectors
            for key, failure in sorted(reflector.failures.items())
        }

    async def run(self) -> None:
        """Reflect every kind until cancelled; then close the client."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.recorder.run(), name="kube-events")
                for reflector in self.reflectors:
                    group.create_task(reflector.run(), name=f"kube-{reflector.kind}")
        finally:
            await self.client.close()

    async def wait_synced(self, stop: asyncio.Event) -> bool:
        """Wait until every kind has been listed once; False if `stop` was set first."""
        synced: asyncio.Future[Any] = asyncio.gather(*(r.synced.wait() for r in self.reflectors))
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([synced, stopped], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (synced, stopped):
            waiter.cancel()
        return not stop.is_set()
