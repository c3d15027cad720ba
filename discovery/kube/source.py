"""Lists and watches of one kind through lightkube's async client, as plain dicts.

Errors are sorted here into what the reflector acts on: 410 Gone (list again), a kind the
server does not serve (404 on every version: its CRD is not installed), an error status the
server answered with, and everything else (the connection failed: resume the watch).
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core.generic_client import ListAsyncIterable
from lightkube.core.resource import GlobalResource, NamespacedResource
from lightkube.core.resource import Resource as ClientResource

from istiolite.discovery.kube.kinds import Kind
from istiolite.discovery.kube.reflector import Gone, NotServed, Page, Raw, ServerRefused

ALL_NAMESPACES = "*"
# Pages of a list: big enough that 5,000 Pods take few round trips, small enough that one
# page of them stays a few MiB.
CHUNK_SIZE = 500


class KubeSource:
    def __init__(self, client: AsyncClient, kind: Kind) -> None:
        self.client = client
        self.spec = kind
        self.kind = kind.kind
        self.resource = kind.versions[0]  # the version served, once a list has found it

    @property
    def api_version(self) -> str:
        return self.spec.api_version(self.resource)

    async def list(self) -> AsyncGenerator[Page, None]:
        missing = []
        for resource in self.spec.versions:
            self.resource = resource
            listing = self._list(resource)
            page: list[Raw] = []
            try:
                async for obj in listing:
                    page.append(_raw(obj))
                    if len(page) == CHUNK_SIZE:
                        yield Page(page, listing.resourceVersion)
                        page = []
            except httpx2.HTTPStatusError as e:
                if _status(e) != 404:
                    raise _sorted(e) from e
                missing.append(self.api_version)  # 404 comes with the first page, or never
                continue
            yield Page(page, listing.resourceVersion)
            return
        raise NotServed(f"the API server serves none of {', '.join(missing)}")

    async def watch(self, resource_version: str) -> AsyncGenerator[tuple[str, Raw], None]:
        events = self._watch(resource_version)
        async with contextlib.aclosing(events):
            try:
                async for event_type, obj in events:
                    yield event_type, _raw(obj)
            except httpx2.HTTPStatusError as e:
                raise _sorted(e) from e

    def _list(self, resource: type[ClientResource]) -> ListAsyncIterable[Any]:
        if self.spec.namespaced:
            namespaced = typing.cast(type[NamespacedResource], resource)
            return self.client.list(namespaced, namespace=ALL_NAMESPACES, chunk_size=CHUNK_SIZE)
        return self.client.list(typing.cast(type[GlobalResource], resource), chunk_size=CHUNK_SIZE)

    def _watch(self, resource_version: str) -> AsyncGenerator[tuple[str, Any], None]:
        if self.spec.namespaced:
            events: Any = self.client.watch(
                typing.cast(type[NamespacedResource], self.resource),
                namespace=ALL_NAMESPACES,
                resource_version=resource_version,
            )
        else:
            events = self.client.watch(
                typing.cast(type[GlobalResource], self.resource), resource_version=resource_version
            )
        return typing.cast(AsyncGenerator[tuple[str, Any], None], events)


def _raw(obj: ClientResource | dict[str, Any]) -> Raw:
    # Typed models (msgspec structs) convert in C; generic resources already are dicts.
    if isinstance(obj, dict):
        return obj
    return typing.cast(Raw, obj.to_dict())  # type: ignore[attr-defined]


def _status(e: httpx2.HTTPStatusError) -> int:
    # A watch's ERROR event becomes an ApiError that carries a Status but no response.
    if isinstance(e, ApiError) and e.status is not None and e.status.code is not None:
        return int(e.status.code)
    return e.response.status_code


def _sorted(e: httpx2.HTTPStatusError) -> Exception:
    code = _status(e)
    message = e.status.message if isinstance(e, ApiError) and e.status else str(e)
    if code == 410:
        return Gone(message)
    return ServerRefused(f"the server answered {code}: {message}")
