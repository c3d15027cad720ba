"""STAND-IN for pilot-discovery: a tiny ADS server with one fixed snapshot.

Replace with the real pilot-discovery once it exists. It serves a single cluster (`backend`,
one static endpoint) and a single listener (`ingress`, HTTP to that cluster, marked INBOUND so
that `/drain_listeners?inboundonly` drains it), which is all Envoy needs to receive LDS and CDS
and carry traffic. It answers each type once per stream and ignores ACKs and NACKs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 (registers type)
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,  # noqa: F401 (registers type)
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, json_format  # type: ignore[import-untyped,unused-ignore]

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"


def _cluster(backend_port: int) -> cluster_pb2.Cluster:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": backend_port}}
    return json_format.ParseDict(
        {
            "name": "backend",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "backend",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
            },
        },
        cluster_pb2.Cluster(),
    )


def _listener(listener_port: int) -> listener_pb2.Listener:
    hcm = (
        "type.googleapis.com/"
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    )
    manager = {
        "@type": hcm,
        "stat_prefix": "ingress",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return json_format.ParseDict(
        {
            "name": "ingress",
            "traffic_direction": "INBOUND",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": manager,
                        }
                    ]
                }
            ],
        },
        listener_pb2.Listener(),
    )


class _Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, resources: dict[str, list[Any]]) -> None:
        self.resources = resources
        self.streams = 0

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        self.streams += 1
        answered: set[str] = set()
        async for request in request_iterator:
            type_url = request.type_url
            if type_url in answered or type_url not in self.resources:
                continue
            answered.add(type_url)
            packed = []
            for message in self.resources[type_url]:
                wrapped = any_pb2.Any()
                wrapped.Pack(message)
                packed.append(wrapped)
            yield discovery_pb2.DiscoveryResponse(
                version_info="1", type_url=type_url, nonce="1", resources=packed
            )


class AdsStandIn:
    """Serves the fixed snapshot on 127.0.0.1:`port` until `stop()`."""

    def __init__(self, *, port: int, backend_port: int, listener_port: int) -> None:
        self.port = port
        self.servicer = _Ads({CDS: [_cluster(backend_port)], LDS: [_listener(listener_port)]})
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self._server = grpc.aio.server()
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self.servicer, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            await asyncio.sleep(0)
