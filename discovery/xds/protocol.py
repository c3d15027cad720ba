"""The rules of the state-of-the-world xDS protocol, as one small pure function.

For each resource type on a stream, Envoy's request says one of a few things, told apart by
the nonce it echoes:

- no nonce: a new subscription (first request, or a reconnect): always answer;
- a nonce that is not the last one sent: a stale request, sent before our latest response
  reached Envoy; it says nothing new, because Envoy will answer that response too. Ignore it;
- the last nonce with `error_detail`: a NACK of that response; Envoy keeps its previous config;
- the last nonce without error: an ACK of that response.

After an ACK or NACK, a changed list of resource names (EDS, RDS) is a new subscription and is
answered at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Verdict(enum.Enum):
    SUBSCRIBE = "subscribe"
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class TypeState:
    """What one stream knows about one resource type."""

    names: frozenset[str] = frozenset()  # subscribed names; empty means all (wildcard)
    sent_version: str = ""
    sent_nonce: str = ""
    acked_version: str = ""
    nacked_version: str = ""
    error: str = ""  # Envoy's error_detail for the last NACK


@dataclass(frozen=True, slots=True)
class Request:
    version_info: str
    nonce: str
    names: frozenset[str]
    error: str  # error_detail.message, empty when there is none


def on_request(state: TypeState | None, request: Request) -> tuple[TypeState, Verdict, bool]:
    """Apply one request; return the new state, what the request was, and whether to respond."""
    if state is None or not request.nonce:
        base = state or TypeState()
        return replace(base, names=request.names), Verdict.SUBSCRIBE, True
    if request.nonce != state.sent_nonce:
        return state, Verdict.STALE, False
    renamed = request.names != state.names
    if request.error:
        new = replace(
            state, names=request.names, nacked_version=state.sent_version, error=request.error
        )
        return new, Verdict.NACK, renamed
    new = replace(state, names=request.names, acked_version=request.version_info, error="")
    return new, Verdict.ACK, renamed


def sent(state: TypeState, *, version: str, nonce: str) -> TypeState:
    return replace(state, sent_version=version, sent_nonce=nonce)
