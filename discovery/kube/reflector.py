"""One kind's objects, kept in step with the API server: list, then watch, forever.

The loop is client-go's reflector, cut down to what a control plane needs:

- List, then *replace* the local store with the result: whatever the store had that the list
  lacks was deleted while nobody watched, and is removed now (a delete is never missed, even
  across an outage).
- Watch from the list's resourceVersion, so no change between the list and the watch is lost.
- 410 Gone means the server no longer has history back to our resourceVersion (etcd was
  compacted, or the API server restarted with a fresh watch cache): list again.
- A connection that fails (refused, reset) is retried from the last resourceVersion after a
  backoff: most outages are short, and resuming costs nothing, while relisting 5,000 Pods does.
  An error the server answered with (500, 403, a 504 for a resourceVersion it has not reached)
  is not cured by repeating the same request: list again after the backoff.
- A watch that delivers nothing for `silence` seconds is reopened from the last
  resourceVersion: a half-open TCP connection (a NAT or load balancer that dropped it) looks
  exactly like a quiet kind, and only reconnecting tells them apart.

Objects are converted as they arrive; the store holds typed resources only. An object that
fails validation is reported once per resourceVersion (`on_invalid`) and skipped: the last
good version of it, if there is one, stays in the store, so a bad edit never takes working
configuration away. An update that converts to a resource equal to the stored one keeps the
stored object, whose identity the xDS cache keys on, and is not a change.

The source of lists and watches is injected (`Source`), so the loop is tested without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from istiolite.api import Resource, ValidationError

log = logging.getLogger(__name__)

Raw = Mapping[str, Any]


class Gone(Exception):
    """The server cannot watch from the given resourceVersion (HTTP 410): list again."""


class NotServed(Exception):
    """The API server does not serve this kind (its CRD is not installed)."""


class ServerRefused(Exception):
    """The server answered a request with an error status; resuming would repeat it."""


@dataclass(frozen=True, slots=True)
class Page:
    """Part of one list; every page of a list carries the list's resourceVersion."""

    items: list[Raw]
    resource_version: str


class Source(Protocol):
    kind: str

    def list(self) -> AsyncGenerator[Page, None]:
        """One consistent list, in pages, so that no more than a page of raw objects (Pods
        are ~10 KiB each) is held at once; the last page may be empty."""
        ...

    def watch(self, resource_version: str) -> AsyncGenerator[tuple[str, Raw], None]:
        """Events as (type, object): ADDED, MODIFIED, DELETED or BOOKMARK."""
        ...


@dataclass(frozen=True, slots=True)
class Tuning:
    backoff_initial: float = 0.25
    backoff_max: float = 5.0
    silence: float = 120.0  # seconds without an event before the watch is reopened
    missing_retry: float = 10.0  # how often to look again for a kind that is not served


DEFAULT_TUNING = Tuning()


class Backoff:
    """Exponential, capped, with jitter so that many clients do not retry in step."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial, self.cap = initial, cap
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._next = self.initial


@dataclass(frozen=True, slots=True)
class Failure:
    resource_version: str
    error: ValidationError


def object_key(raw: Raw) -> str:
    meta = raw.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def resource_version_of(raw: Raw) -> str:
    return str((raw.get("metadata") or {}).get("resourceVersion") or "")


class Reflector:
    def __init__(
        self,
        source: Source,
        *,
        convert: Callable[[Raw], Resource],
        on_change: Callable[[], None],
        on_invalid: Callable[[Raw, ValidationError, bool], None],  # bool: last good kept
        tuning: Tuning = DEFAULT_TUNING,
    ) -> None:
        self.source = source
        self.kind = source.kind
        self.convert = convert
        self.on_change = on_change
        self.on_invalid = on_invalid
        self.tuning = tuning
        self.store: dict[str, Resource] = {}  # by "namespace/name": the last good version
        self.failures: dict[str, Failure] = {}  # objects whose current version is invalid
        self.resource_version: str | None = None  # None: list before watching
        self.synced = asyncio.Event()  # set after the first list (or on learning it is not served)
        self.backoff = Backoff(tuning.backoff_initial, tuning.backoff_max)

    # --- applying what the server says ------------------------------------------------------

    def replace(self, items: Iterable[Raw]) -> bool:
        """Make the store what a list returned; return whether any resource changed."""
        seen: set[str] = set()
        changed = self._put_all(items, seen)
        return self._drop_unseen(seen) or changed

    def _put_all(self, items: Iterable[Raw], seen: set[str]) -> bool:
        changed = False
        for raw in items:
            key = object_key(raw)
            seen.add(key)
            changed = self._put(key, raw) or changed
        return changed

    def _drop_unseen(self, seen: set[str]) -> bool:
        """Forget what a complete list did not have: it was deleted while nobody watched."""
        gone = [k for k in self.store if k not in seen]
        for key in gone:
            del self.store[key]
        for key in [k for k in self.failures if k not in seen]:
            del self.failures[key]
        return bool(gone)

    def apply(self, event_type: str, raw: Raw) -> bool:
        """Apply one watch event; return whether any resource changed."""
        if event_type == "BOOKMARK":
            return False
        key = object_key(raw)
        if event_type == "DELETED":
            self.failures.pop(key, None)
            return self.store.pop(key, None) is not None
        return self._put(key, raw)

    def _put(self, key: str, raw: Raw) -> bool:
        try:
            resource = self.convert(raw)
        except ValidationError as e:
            version = resource_version_of(raw)
            earlier = self.failures.get(key)
            if earlier is None or earlier.resource_version != version:
                self.failures[key] = Failure(version, e)
                self.on_invalid(raw, e, key in self.store)
            return False
        self.failures.pop(key, None)
        stored = self.store.get(key)
        if stored == resource:
            return False  # keep the stored object: configuration built from it stays cached
        self.store[key] = resource
        return True

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch(self.resource_version or "")
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info("%s: resourceVersion expired; listing again", self.kind)
                self.resource_version = None
            except NotServed as e:
                self._not_served(e)
                await asyncio.sleep(self.tuning.missing_retry)
            except Exception as e:  # the loop must outlive any one failure
                if isinstance(e, ServerRefused):
                    self.resource_version = None
                delay = self.backoff.next()
                log.warning("%s: %s; retrying in %.1fs", self.kind, _describe(e), delay)
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        seen: set[str] = set()
        changed = False
        version = ""
        async with contextlib.aclosing(self.source.list()) as pages:
            async for page in pages:
                changed = self._put_all(page.items, seen) or changed
                version = page.resource_version
        # Only a complete list shows what was deleted; a list that failed half-way has
        # updated some objects (newer versions, each valid) and deleted none.
        changed = self._drop_unseen(seen) or changed
        self.backoff.reset()
        self.resource_version = version
        log.info("%s: listed %d at resourceVersion %s", self.kind, len(seen), version)
        self.synced.set()
        if changed:
            self.on_change()

    async def _watch(self, resource_version: str) -> None:
        loop = asyncio.get_running_loop()
        stream = self.source.watch(resource_version)
        try:
            async with asyncio.timeout(self.tuning.silence) as quiet:
                async for event_type, raw in stream:
                    quiet.reschedule(loop.time() + self.tuning.silence)
                    self.backoff.reset()
                    version = resource_version_of(raw)
                    changed = self.apply(event_type, raw)
                    if version:
                        self.resource_version = version
                    if changed:
                        self.on_change()
        except TimeoutError:
            if not quiet.expired():
                raise
            log.debug("%s: no event for %.0fs; reopening the watch", self.kind, self.tuning.silence)
        finally:
            await stream.aclose()

    def _not_served(self, e: NotServed) -> None:
        if not self.synced.is_set():
            log.warning(
                "%s: %s; looking again every %.0fs", self.kind, e, self.tuning.missing_retry
            )
        if self.replace(()):
            self.on_change()
        self.resource_version = None
        self.synced.set()


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
