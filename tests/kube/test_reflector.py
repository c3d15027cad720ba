"""The reflector's loop against a scripted source: what it lists, watches, keeps and drops.

No API server here (these run in the default tier); tests/kube/test_registry.py shows the same
behaviour against the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest

from istiolite.api import ValidationError, VirtualService
from istiolite.discovery.kube.kinds import convert
from istiolite.discovery.kube.reflector import (
    Backoff,
    Gone,
    NotServed,
    Page,
    Raw,
    Reflector,
    ServerRefused,
    Tuning,
)

FAST = Tuning(backoff_initial=0.001, backoff_max=0.005, silence=5.0, missing_retry=0.01)
END = object()  # ends the current watch stream, as a server closing it would


def vs(name: str, rv: str, *, subset: str = "v1", weight: int = 100) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": rv,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
        },
        "spec": {
            "hosts": [name],
            "http": [
                {"route": [{"destination": {"host": name, "subset": subset}, "weight": weight}]}
            ],
        },
    }


class ScriptedSource:
    """Answers lists from a script, and streams watch events the test pushes."""

    kind = "VirtualService"

    def __init__(self, *lists: Page | Exception | tuple[Page | Exception, ...]) -> None:
        self.lists = list(lists)
        self.listed = 0
        self.watched: list[str] = []  # the resourceVersion of every watch opened
        self.events: asyncio.Queue[tuple[str, Raw] | Exception | object] = asyncio.Queue()

    async def list(self) -> AsyncGenerator[Page, None]:
        self.listed += 1
        answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        for part in answer if isinstance(answer, tuple) else (answer,):
            if isinstance(part, Exception):
                raise part
            yield part

    async def watch(self, resource_version: str) -> AsyncGenerator[tuple[str, Raw], None]:
        self.watched.append(resource_version)
        while True:
            item = await self.events.get()
            if item is END:
                return
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]


class Harness:
    def __init__(self, source: ScriptedSource, tuning: Tuning = FAST) -> None:
        self.source = source
        self.changes = 0
        self.invalid: list[tuple[str, ValidationError, bool]] = []
        self.reflector = Reflector(
            source,
            convert=lambda raw: convert(
                raw, api_version="networking.istio.io/v1", kind="VirtualService"
            ),
            on_change=self._changed,
            on_invalid=lambda raw, e, kept: self.invalid.append(
                (raw["metadata"]["resourceVersion"], e, kept)
            ),
            tuning=tuning,
        )
        self.task: asyncio.Task[None] | None = None

    def _changed(self) -> None:
        self.changes += 1

    def start(self) -> Harness:
        self.task = asyncio.create_task(self.reflector.run())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    def names(self) -> set[str]:
        return {r.meta.name for r in self.reflector.store.values()}

    def routes(self, name: str) -> str | None:
        stored = self.reflector.store[f"default/{name}"]
        assert isinstance(stored, VirtualService)
        return stored.spec.http[0].route[0].destination.subset


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - polls plain state the reflector changes
            await asyncio.sleep(0.001)


@pytest.fixture
async def harness() -> Any:
    started: list[Harness] = []

    def make(source: ScriptedSource, tuning: Tuning = FAST) -> Harness:
        h = Harness(source, tuning).start()
        started.append(h)
        return h

    yield make
    for h in started:
        await h.stop()


async def test_list_fills_the_store_and_the_watch_starts_at_its_resource_version(
    harness: Any,
) -> None:
    source = ScriptedSource(Page([vs("a", "5"), vs("b", "6")], "10"))
    h = harness(source)

    await until(lambda: source.watched == ["10"])
    assert h.names() == {"a", "b"} and h.changes == 1 and h.reflector.synced.is_set()
    await source.events.put(("MODIFIED", vs("a", "11", subset="v2")))
    await source.events.put(("DELETED", vs("b", "12")))
    await until(lambda: h.names() == {"a"})
    assert h.routes("a") == "v2"
    assert h.reflector.resource_version == "12"


async def test_stored_objects_carry_no_resource_version_and_no_foreign_annotations(
    harness: Any,
) -> None:
    h = harness(ScriptedSource(Page([vs("a", "5")], "10")))
    await until(lambda: bool(h.names()))
    stored = h.reflector.store["default/a"]
    assert stored.meta.resource_version == "" and dict(stored.meta.annotations) == {}


async def test_an_update_that_changes_nothing_read_keeps_the_stored_object(harness: Any) -> None:
    source = ScriptedSource(Page([vs("a", "5")], "10"))
    h = harness(source)
    await until(lambda: bool(source.watched))
    before = h.reflector.store["default/a"]

    await source.events.put(("MODIFIED", vs("a", "11")))  # a new resourceVersion, same spec
    await until(lambda: h.reflector.resource_version == "11")

    assert h.reflector.store["default/a"] is before
    assert h.changes == 1  # the list only


async def test_410_gone_lists_again_and_deletes_what_vanished_meanwhile(harness: Any) -> None:
    source = ScriptedSource(
        Page([vs("a", "5"), vs("b", "6")], "10"),
        Page([vs("a", "5"), vs("c", "30")], "31"),
    )
    h = harness(source)
    await until(lambda: source.watched == ["10"])
    kept = h.reflector.store["default/a"]

    await source.events.put(Gone("too old resource version: 10 (25)"))

    await until(lambda: source.watched == ["10", "31"])
    assert h.names() == {"a", "c"}
    assert h.reflector.store["default/a"] is kept
    assert source.listed == 2


async def test_a_list_that_fails_half_way_deletes_nothing_until_a_list_completes(
    harness: Any,
) -> None:
    source = ScriptedSource(
        Page([vs("a", "5"), vs("b", "6")], "10"),
        (Page([vs("a", "21", subset="v2")], "30"), ConnectionResetError("reset")),
        (Page([vs("a", "21", subset="v2")], "31"), Page([], "31")),
    )
    # A backoff long enough to look at the store between the broken list and the next.
    h = harness(source, Tuning(backoff_initial=0.5, backoff_max=0.5))
    await until(lambda: source.watched == ["10"])

    await source.events.put(Gone("expired"))
    await until(lambda: source.listed == 2)
    await until(lambda: h.routes("a") == "v2")
    assert h.names() == {"a", "b"}  # b's absence from a broken list proves nothing

    await until(lambda: source.watched == ["10", "31"])
    assert h.names() == {"a"}


async def test_a_failed_connection_resumes_the_watch_where_it_stopped(harness: Any) -> None:
    source = ScriptedSource(Page([vs("a", "5")], "10"))
    h = harness(source)
    await until(lambda: source.watched == ["10"])
    await source.events.put(("ADDED", vs("b", "14")))
    await source.events.put(ConnectionRefusedError("connection refused"))

    await until(lambda: source.watched == ["10", "14"])
    assert source.listed == 1 and h.names() == {"a", "b"}


async def test_an_error_the_server_answered_with_lists_again(harness: Any) -> None:
    source = ScriptedSource(Page([vs("a", "5")], "10"), Page([], "40"))
    h = harness(source)
    await until(lambda: source.watched == ["10"])

    await source.events.put(ServerRefused("the server answered 500: etcd unavailable"))

    await until(lambda: source.watched == ["10", "40"])
    assert source.listed == 2 and h.names() == set()


async def test_list_failures_are_retried_and_nothing_is_served_before_the_first_list(
    harness: Any,
) -> None:
    source = ScriptedSource(
        OSError("unreachable"), OSError("unreachable"), Page([vs("a", "5")], "10")
    )
    h = harness(source)
    await until(lambda: source.listed == 2)
    assert not h.reflector.synced.is_set()

    await until(h.reflector.synced.is_set)
    assert source.listed == 3 and h.names() == {"a"}


async def test_a_silent_watch_is_reopened_from_the_last_resource_version(harness: Any) -> None:
    source = ScriptedSource(Page([vs("a", "5")], "10"))
    harness(source, Tuning(backoff_initial=0.001, backoff_max=0.005, silence=0.05))
    await until(lambda: source.watched == ["10"])
    await source.events.put(("ADDED", vs("b", "12")))

    await until(lambda: source.watched[:3] == ["10", "12", "12"])
    assert source.listed == 1


async def test_a_closed_watch_is_reopened_without_listing(harness: Any) -> None:
    source = ScriptedSource(Page([vs("a", "5")], "10"))
    harness(source)
    await until(lambda: source.watched == ["10"])
    await source.events.put(END)
    await until(lambda: source.watched == ["10", "10"])
    assert source.listed == 1


async def test_an_invalid_update_is_reported_once_and_the_last_good_version_stays(
    harness: Any,
) -> None:
    source = ScriptedSource(Page([vs("a", "5")], "10"), Page([vs("a", "11", weight=-5)], "20"))
    h = harness(source)
    await until(lambda: source.watched == ["10"])

    await source.events.put(("MODIFIED", vs("a", "11", subset="v2", weight=-5)))
    await until(lambda: bool(h.invalid))
    assert h.routes("a") == "v1"
    [(version, error, kept)] = h.invalid
    assert version == "11" and kept
    assert [str(e) for e in error.errors] == [
        "spec.http[0].route[0].weight: must be 0..2147483647, got -5"
    ]
    assert set(h.reflector.failures) == {"default/a"}

    # A relist that finds the same bad version neither reports it again nor drops the good one.
    await source.events.put(Gone("expired"))
    await until(lambda: source.watched == ["10", "20"])
    assert len(h.invalid) == 1 and h.routes("a") == "v1"

    await source.events.put(("MODIFIED", vs("a", "21", subset="v3")))
    await until(lambda: not h.reflector.failures)
    assert h.routes("a") == "v3"


async def test_deleting_an_invalid_object_forgets_it(harness: Any) -> None:
    source = ScriptedSource(Page([vs("a", "5", weight=-5)], "10"))
    h = harness(source)
    await until(lambda: source.watched == ["10"])
    assert h.names() == set() and set(h.reflector.failures) == {"default/a"}
    [(_, _, kept)] = h.invalid
    assert not kept

    await source.events.put(("DELETED", vs("a", "11", weight=-5)))
    await until(lambda: not h.reflector.failures)
    assert h.changes == 0


async def test_a_kind_that_is_not_served_counts_as_empty_until_it_is(harness: Any) -> None:
    source = ScriptedSource(NotServed("no CRD"), NotServed("no CRD"), Page([vs("a", "5")], "10"))
    h = harness(source)
    await until(h.reflector.synced.is_set)
    assert h.names() == set()
    await until(lambda: h.names() == {"a"})
    assert source.listed == 3


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(0.25, 2.0)
    delays = [backoff.next() for _ in range(6)]
    for delay, nominal in zip(delays, [0.25, 0.5, 1.0, 2.0, 2.0, 2.0], strict=True):
        assert 0.8 * nominal <= delay <= nominal
    backoff.reset()
    assert backoff.next() <= 0.25
