"""The xDS protocol rules, one row per situation Envoy can put a stream in."""

from __future__ import annotations

import pytest

from istiolite.discovery.xds.protocol import Request, TypeState, Verdict, on_request, sent

SENT = TypeState(names=frozenset({"a"}), sent_version="v2", sent_nonce="n2", acked_version="v1")


def req(
    version: str = "", nonce: str = "", names: set[str] | None = None, error: str = ""
) -> Request:
    return Request(version_info=version, nonce=nonce, names=frozenset(names or set()), error=error)


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
            "reconnect with a version but no nonce subscribes again",
            None,
            req(version="v9", names={"a"}),
            Verdict.SUBSCRIBE,
            True,
            {"acked_version": ""},
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
            "ack of the last response",
            SENT,
            req("v2", "n2", {"a"}),
            Verdict.ACK,
            False,
            {"acked_version": "v2"},
        ),
        (
            "ack that changes resource names asks for more",
            SENT,
            req("v2", "n2", {"a", "b"}),
            Verdict.ACK,
            True,
            {"acked_version": "v2", "names": frozenset({"a", "b"})},
        ),
        (
            "nack keeps the acked version and records the error",
            SENT,
            req("v1", "n2", {"a"}, error="bad regex"),
            Verdict.NACK,
            False,
            {"acked_version": "v1", "nacked_version": "v2", "error": "bad regex"},
        ),
        (
            "nack that changes names is answered",
            SENT,
            req("v1", "n2", {"b"}, error="bad"),
            Verdict.NACK,
            True,
            {"names": frozenset({"b"})},
        ),
        (
            "stale nonce is ignored",
            SENT,
            req("v1", "n1", {"a", "b"}),
            Verdict.STALE,
            False,
            {"names": frozenset({"a"})},
        ),
        (
            "stale nack is ignored",
            SENT,
            req("v1", "n1", {"a"}, error="old"),
            Verdict.STALE,
            False,
            {"error": ""},
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
    new, got_verdict, got_respond = on_request(state, request_)
    assert (got_verdict, got_respond) == (verdict, respond)
    for key, value in expect.items():
        assert getattr(new, key) == value, key


def test_ack_after_nack_clears_the_error() -> None:
    state, _, _ = on_request(SENT, req("v1", "n2", {"a"}, error="bad"))
    state = sent(state, version="v3", nonce="n3")
    state, verdict, _ = on_request(state, req("v3", "n3", {"a"}))
    assert verdict is Verdict.ACK and state.error == "" and state.acked_version == "v3"
