"""Node ids by Istio's rules, and client mistakes told once: the pure parts of ADS input."""

from __future__ import annotations

from typing import Any

import pytest

from istiolite.discovery.xds.node import NodeError, parse_node
from istiolite.discovery.xds.notices import Note, Repeats

ISTIO = "sidecar~10.1.0.5~reviews-v1-a.default~default.svc.cluster.local"


@pytest.mark.parametrize(
    ("node_id", "metadata", "expect"),
    [
        (ISTIO, {}, {"name": "reviews-v1-a", "namespace": "default", "ips": ("10.1.0.5",)}),
        (
            ISTIO,
            {"INSTANCE_IPS": "10.1.0.5, fd00::5", "NAMESPACE": "shop", "NAME": "r"},
            {"ips": ("10.1.0.5", "fd00::5"), "namespace": "shop", "name": "r"},
        ),
        # Istio's rule: metadata addresses only when every one is an address.
        (ISTIO, {"INSTANCE_IPS": "10.1.0.7,nope"}, {"ips": ("10.1.0.5",)}),
        ("router~10.0.0.1~gw.istio-system~x", {}, {"namespace": "istio-system"}),
        ("db-0.mysql.db", {}, {"name": "db-0.mysql", "namespace": "db", "ips": ()}),
        ("p.default", {"LABELS": {"app": "p"}}, {"labels": {"app": "p"}}),
    ],
)
def test_node_ids_istio_accepts(
    node_id: str, metadata: dict[str, Any], expect: dict[str, Any]
) -> None:
    proxy = parse_node(node_id, metadata)
    assert proxy.id == node_id
    for key, value in expect.items():
        assert getattr(proxy, key) == value, key


@pytest.mark.parametrize(
    ("node_id", "metadata", "problem"),
    [
        ("", {}, "node id is empty"),
        ("sidecar~10.0.0.1~p.default", {}, "has 3 parts"),
        ("sidecar~10.0.0.1~p.default~d~e", {}, "has 5 parts"),
        ("Sidecar~10.0.0.1~p.default~d", {}, "type 'Sidecar' is not one of"),
        ("sidecar~~p.default~d", {}, "no valid IP address"),
        ("sidecar~10.0.0.1~.default~d", {}, "is not POD.NAMESPACE"),
        ("sidecar~10.0.0.1~p.~d", {}, "is not POD.NAMESPACE"),
        ("p.default\n", {}, "'p.default\\n' is not POD.NAMESPACE"),
        ("p." + "n" * 64, {}, "is not POD.NAMESPACE"),
        ("p.default", {"INSTANCE_IPS": 1}, "INSTANCE_IPS: must be a string"),
        ("p.default", {"LABELS": {"app": 1}}, "LABELS: must be a map of strings"),
    ],
)
def test_node_ids_istio_refuses(node_id: str, metadata: dict[str, Any], problem: str) -> None:
    with pytest.raises(NodeError) as raised:
        parse_node(node_id, metadata)
    assert problem in str(raised.value)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_event_is_told_once_and_its_repeats_summarised_each_interval() -> None:
    clock = Clock()
    repeats = Repeats(interval=60, clock=clock)
    key = ("proxy-a", "rejected", "CDS", "v1")
    assert repeats.note(key) == Note(first=True)
    assert [repeats.note(key) for _ in range(3)] == [Note(first=False)] * 3
    clock.now = 61
    assert repeats.note(key) == Note(first=False, repeats=4)
    assert repeats.note(key) == Note(first=False)
    assert repeats.note(("proxy-a", "rejected", "CDS", "v2")).first  # another version


def test_a_leaving_proxy_has_its_repeats_told_and_is_not_told_in_full_again() -> None:
    repeats = Repeats(clock=Clock())
    a, b = ("proxy-a", "rejected", "EDS", "v1"), ("proxy-b", "rejected", "EDS", "v1")
    for key in (a, a, a, b, b):
        repeats.note(key)
    assert repeats.flush("proxy-a") == [(a, 2)]
    assert repeats.flush("proxy-a") == []
    assert repeats.note(a) == Note(first=False)


def test_keys_are_bounded_oldest_forgotten_first() -> None:
    repeats = Repeats(capacity=3, clock=Clock())
    for i in range(10):
        repeats.note(("p", i))
    assert repeats.note(("p", 9)) == Note(first=False)
    assert repeats.note(("p", 0)).first
