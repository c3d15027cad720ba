"""A client that NACKs one response over and over: what it costs discovery's log and CPU.

Runs the real pilot-discovery on loopback with the test mesh, opens one ADS stream, takes the
CDS response and sends `BENCH_NACKS` (5,000) NACKs of it with a three-line error, then one
LDS request whose answer proves every NACK was read. Prints the time that took, discovery's
log lines and bytes, its CPU, and the rejects it counted. The issue this answers: 5,000 NACKs
once wrote 15,000 lines (7 MB) in 11 s and counted 5,000 rejects.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from istiolite.testing.mesh import Discovery, workdir

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
MESH = Path(__file__).parent.parent / "tests" / "discovery" / "testdata" / "mesh.yaml"


async def nack(address: str, count: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(
            METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )()
        node = base_pb2.Node(id="sidecar~10.1.0.5~productpage-a.default~default.svc.cluster.local")
        await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER))
        response = await call.read()
        error = status_pb2.Status(code=3, message="cluster a: bad\ncluster b: bad\ncluster c: bad")
        started = time.perf_counter()
        for _ in range(count):
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    type_url=CLUSTER, response_nonce=response.nonce, error_detail=error
                )
            )
        await call.write(discovery_pb2.DiscoveryRequest(type_url=LISTENER))
        while (await call.read()).type_url != LISTENER:
            pass
        elapsed = time.perf_counter() - started
        call.cancel()
        return elapsed


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    count = int(os.environ.get("BENCH_NACKS", "5000"))
    with workdir() as work:
        config = work / "config"
        config.mkdir()
        shutil.copy(MESH, config / "mesh.yaml")
        discovery = Discovery(config, work).start()
        try:
            assert discovery.proc is not None
            before_lines = len(discovery.log.read_text().splitlines())
            before_bytes = discovery.log.stat().st_size
            cpu = _cpu(discovery.proc.pid)
            elapsed = asyncio.run(nack(discovery.address, count))
            cpu = _cpu(discovery.proc.pid) - cpu
            time.sleep(0.5)  # the disconnect's summary line
            lines = len(discovery.log.read_text().splitlines()) - before_lines
            size = discovery.log.stat().st_size - before_bytes
            rejects = sum(
                v for k, v in discovery.metrics().items() if k.startswith("pilot_total_xds_rejects")
            )
        finally:
            discovery.stop()
    print(
        f"{count} NACKs of one response: read in {elapsed:.2f} s, discovery CPU {cpu:.2f} s, "
        f"{lines} log lines ({size} bytes), {rejects:g} rejects counted"
    )
