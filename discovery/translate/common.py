"""Names and small conversions shared by the per-type builders."""

from __future__ import annotations

from datetime import timedelta

from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
# Inbound connections that Envoy forwards to the app keep this source address, so the capture
# rules can tell them apart from the app's own outbound traffic and never loop them.
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6"


def outbound_cluster(port: int, subset: str | None, hostname: str) -> str:
    return f"outbound|{port}|{subset or ''}|{hostname}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def parse_cluster_name(name: str) -> tuple[str, int, str, str] | None:
    """`outbound|9080|v1|reviews...` -> ("outbound", 9080, "v1", "reviews..."), else None."""
    parts = name.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def duration(value: timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(value)
    return d


def pack(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def fraction(percent: float) -> percent_pb2.FractionalPercent:
    """Istio's percentages (0..100, fractional) as an exact per-million fraction."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )
