"""The rules of the state-of-the-world xDS protocol, as one small pure function.

For each resource type on a stream, Envoy's request says one of a few things, told apart by
the nonce it echoes:

- no nonce: a new subscription (first request, or a reconnect): always answer;
- the nonce of the last response sent, without `error_detail`: an ACK of that response;
- the nonce of a response sent, with `error_detail`: a NACK of that response. Envoy keeps
  its previous config (CDS: the clusters it could not take; the others are applied). The
  NACK is recorded even when a newer response is already on its way: Envoy did reject that
  version, and will answer the newer one in its turn;
- the nonce of an older response, without error: a stale request, sent before our latest
  response reached Envoy; it says nothing new, because Envoy will answer that response too;
- a nonce never sent on this stream: nothing Envoy sends. Ignored, and said so.

After an ACK or NACK, a changed list of resource names (EDS, RDS) is a new subscription and is
answered at once.

Envoy holds its CDS answers (ACK and NACK alike) while any cluster warms, and a cluster warms
until its endpoints arrive. A cluster that is updated keeps its name, so Envoy's EDS request
for it repeats the subscription and looks like an ACK; left unanswered, the cluster warms until
Envoy's initial fetch timeout (15 s) and the CDS answer waits as long. So after a CDS response
the next EDS request is answered in full (`answer_next`), as Istio does (docs/decisions.md).

Only versions and nonces this server sent are ever stored: what a request claims
(`version_info`, a nonce) is compared, never kept, so hostile input cannot grow the state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

# Responses remembered per type, to know which version an older nonce stood for. Envoy answers
# every response in order, so only the few still in flight matter.
RECENT = 4


class Verdict(enum.Enum):
    SUBSCRIBE = "subscribe"
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"
    UNKNOWN_NONCE = "unknown nonce"  # a nonce this stream never sent


@dataclass(frozen=True, slots=True)
class TypeState:
    """What one stream knows about one resource type."""

    names: frozenset[str] = frozenset()  # subscribed names; empty means all (wildcard)
    sent_version: str = ""
    sent_nonce: str = ""
    recent: tuple[tuple[str, str], ...] = ()  # (nonce, version) of the last responses, oldest first
    acked_version: str = ""
    nacked_version: str = ""
    error: str = ""  # Envoy's error_detail for the last NACK, until an ACK
    nacks: int = 0  # NACK messages received, repeats included
    answer_next: bool = False  # answer the next request even if it only ACKs (warming clusters)

    def version_of(self, nonce: str) -> str | None:
        for sent_nonce, version in reversed(self.recent):
            if sent_nonce == nonce:
                return version
        return None


@dataclass(frozen=True, slots=True)
class Request:
    nonce: str
    names: frozenset[str]
    error: str  # error_detail.message, empty when there is none


@dataclass(frozen=True, slots=True)
class Outcome:
    state: TypeState
    verdict: Verdict
    respond: bool
    rejected: str = ""  # the version a NACK rejected


def on_request(state: TypeState | None, request: Request) -> Outcome:
    """Apply one request to a type's state: the new state, what it was, whether to respond."""
    if state is None or not request.nonce:
        # A request without a nonce answers no response: an error_detail on it rejects nothing.
        base = state or TypeState()
        new = replace(base, names=request.names, answer_next=False)
        return Outcome(new, Verdict.SUBSCRIBE, respond=True)
    version = state.version_of(request.nonce)
    if version is None:
        return Outcome(state, Verdict.UNKNOWN_NONCE, respond=False)
    latest = request.nonce == state.sent_nonce
    if request.error:
        new = replace(
            state,
            names=request.names if latest else state.names,
            nacked_version=version,
            error=request.error,
            nacks=state.nacks + 1,
        )
        return Outcome(
            new, Verdict.NACK, respond=latest and request.names != state.names, rejected=version
        )
    if not latest:
        return Outcome(state, Verdict.STALE, respond=False)
    renamed = request.names != state.names
    new = replace(state, names=request.names, acked_version=version, error="", answer_next=False)
    return Outcome(new, Verdict.ACK, respond=renamed or state.answer_next)


def sent(state: TypeState, *, version: str, nonce: str) -> TypeState:
    recent = (*state.recent, (nonce, version))[-RECENT:]
    return replace(state, sent_version=version, sent_nonce=nonce, recent=recent)


def clusters_sent(endpoints: TypeState) -> TypeState:
    """EDS after a CDS response: the clusters it changed warm until their endpoints arrive."""
    return replace(endpoints, answer_next=True)


def endpoints_sent_whole(endpoints: TypeState) -> TypeState:
    """EDS after a full EDS response: warming clusters have their endpoints."""
    return replace(endpoints, answer_next=False)
