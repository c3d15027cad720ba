"""The xDS protocol rules, one row per situation Envoy (or a broken client) can put a stream in."""

from __future__ import annotations

from dataclasses import replace

import pytest

from istiolite.discovery.xds.protocol import (
    RECENT,
    Request,
    TypeState,
    Verdict,
    clusters_sent,
    endpoints_sent_whole,
    on_request,
    sent,
)

# v1 was sent and ACKed, then v2 was sent: n1 is an older nonce, n2 the latest.
SENT = sent(
    sent(TypeState(names=frozenset({"a"})), version="v1", nonce="n1"), version="v2", nonce="n2"
)
SENT = replace(SENT, acked_version="v1")
NACKED = on_request(SENT, Request("n2", frozenset({"a"}), "bad regex")).state
WARMING = clusters_sent(SENT)
FORGOTTEN = SENT  # n1 and n2 are older than the responses remembered
for i in range(RECENT):
    FORGOTTEN = sent(FORGOTTEN, version=f"w{i}", nonce=f"m{i}")


def req(nonce: str = "", names: set[str] | None = None, error: str = "") -> Request:
    return Request(nonce=nonce, names=frozenset(names or set()), error=error)


@pytest.mark.parametrize(
    ("name", "state", "request_", "verdict", "respond", "expect"),
    [
        (
            "first request subscribes",
            None,
            req(names={"a"}),
            Verdict.SUBSCRIBE,
            True,
            {"names": frozenset({"a"})},
        ),
        (
            "a first request that claims a nonce still subscribes",
            None,
            req("n-from-another-server", {"a"}),
            Verdict.SUBSCRIBE,
            True,
            {"acked_version": "", "sent_nonce": ""},
        ),
        (
            "empty nonce on a known stream re-subscribes and keeps history",
            SENT,
            req(names={"a", "b"}),
            Verdict.SUBSCRIBE,
            True,
            {"names": frozenset({"a", "b"}), "acked_version": "v1"},
        ),
        (
            "an error without a nonce rejects nothing: it subscribes",
            SENT,
            req(names={"a"}, error="bad"),
            Verdict.SUBSCRIBE,
            True,
            {"error": "", "nacked_version": "", "nacks": 0},
        ),
        (
            "ack of the last response records the version sent, not one claimed",
            SENT,
            req("n2", {"a"}),
            Verdict.ACK,
            False,
            {"acked_version": "v2"},
        ),
        (
            "ack that changes resource names asks for more",
            SENT,
            req("n2", {"a", "b"}),
            Verdict.ACK,
            True,
            {"acked_version": "v2", "names": frozenset({"a", "b"})},
        ),
        (
            "nack keeps the acked version and records the rejected one and the error",
            SENT,
            req("n2", {"a"}, error="bad regex"),
            Verdict.NACK,
            False,
            {"acked_version": "v1", "nacked_version": "v2", "error": "bad regex", "nacks": 1},
        ),
        (
            "nack that changes names is answered",
            SENT,
            req("n2", {"b"}, error="bad"),
            Verdict.NACK,
            True,
            {"names": frozenset({"b"})},
        ),
        (
            "a repeated nack is counted and not answered",
            NACKED,
            req("n2", {"a"}, error="bad regex"),
            Verdict.NACK,
            False,
            {"nacked_version": "v2", "nacks": 2},
        ),
        (
            "nack of an older response still in flight records that version",
            SENT,
            req("n1", {"a", "b"}, error="old"),
            Verdict.NACK,
            False,
            {"nacked_version": "v1", "error": "old", "names": frozenset({"a"})},
        ),
        (
            "ack of an older response is stale and ignored",
            SENT,
            req("n1", {"a", "b"}),
            Verdict.STALE,
            False,
            {"names": frozenset({"a"}), "acked_version": "v1"},
        ),
        (
            "ack after a nack clears the error, keeps which version was rejected",
            sent(NACKED, version="v3", nonce="n3"),
            req("n3", {"a"}),
            Verdict.ACK,
            False,
            {"error": "", "acked_version": "v3", "nacked_version": "v2"},
        ),
        (
            "a nonce never sent is ignored",
            SENT,
            req("garbage", {"x"}),
            Verdict.UNKNOWN_NONCE,
            False,
            {"names": frozenset({"a"}), "acked_version": "v1"},
        ),
        (
            "a nack of a nonce never sent is ignored",
            SENT,
            req("garbage", {"a"}, error="bad"),
            Verdict.UNKNOWN_NONCE,
            False,
            {"error": "", "nacks": 0},
        ),
        (
            "a nonce too old to remember is unknown",
            FORGOTTEN,
            req("n1", {"a"}),
            Verdict.UNKNOWN_NONCE,
            False,
            {},
        ),
        (
            "after a CDS response the next EDS request is answered, though it only ACKs",
            WARMING,
            req("n2", {"a"}),
            Verdict.ACK,
            True,
            {"answer_next": False},
        ),
        (
            "a stale EDS request leaves the warming answer for the current one",
            WARMING,
            req("n1", {"a"}),
            Verdict.STALE,
            False,
            {"answer_next": True},
        ),
        (
            "a whole EDS response sent after the CDS one leaves nothing to answer",
            endpoints_sent_whole(WARMING),
            req("n2", {"a"}),
            Verdict.ACK,
            False,
            {},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_protocol_rules(
    name: str,
    state: TypeState | None,
    request_: Request,
    verdict: Verdict,
    respond: bool,
    expect: dict[str, object],
) -> None:
    outcome = on_request(state, request_)
    assert (outcome.verdict, outcome.respond) == (verdict, respond)
    for key, value in expect.items():
        assert getattr(outcome.state, key) == value, key


def test_a_nack_says_which_version_it_rejected() -> None:
    assert on_request(SENT, req("n2", {"a"}, error="x")).rejected == "v2"
    assert on_request(SENT, req("n1", {"a"}, error="x")).rejected == "v1"
    assert on_request(SENT, req("n2", {"a"})).rejected == ""


def test_state_keeps_only_what_the_server_sent() -> None:
    """Hostile requests (huge nonces, versions, errors of unknown nonces) leave no trace."""
    state: TypeState | None = None
    for i in range(1000):
        state = on_request(state, req(f"{i}" * 1000, {"a"}, error="e" * 1000)).state
        state = sent(state, version=f"v{i}", nonce=f"n{i}")
    assert state is not None
    assert len(state.recent) == RECENT
    assert state.error == "" and state.nacks == 0
