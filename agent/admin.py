"""The few calls the agent makes to Envoy's admin API.

Admin answers HTTP/1.0 with 426, so this is an HTTP/1.1 client. Connections are not kept
alive: Envoy is killed and restarted under us, and a pooled socket to a dead Envoy would
turn the first poll after a restart into a spurious failure.
"""

from __future__ import annotations

import httpx2 as httpx
from istiolite.agent.policy import Observation

# server.state is deliberately not read here: the gauge reads 0 (LIVE) before Envoy has set
# it, while /ready reports the state Envoy is really in.
_CONFIG_STATS = r"^(listener_manager\.lds|cluster_manager\.cds)\.update_success$"
# Per-listener gauges: server.total_connections is only refreshed at the stats flush (5 s).
_CONNECTION_STATS = r"^listener\..*\.downstream_cx_active$"


class EnvoyAdmin:
    def __init__(self, port: int, *, timeout: float) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=self.base,
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def observe(self) -> Observation:
        """Envoy's state (from /ready) and whether LDS and CDS have been applied."""
        try:
            ready = await self._client.get("/ready")
            if ready.status_code not in (200, 503):
                return Observation(None, error=f"/ready answered HTTP {ready.status_code}")
            stats = await self._client.get("/stats", params={"filter": _CONFIG_STATS})
        except httpx.HTTPError as error:
            return Observation(None, error=_describe(error))
        counters = _parse_stats(stats.text)
        return Observation(
            state=ready.text.strip(),
            lds_updates=counters.get("listener_manager.lds.update_success", 0),
            cds_updates=counters.get("cluster_manager.cds.update_success", 0),
        )

    async def active_connections(self) -> int | None:
        """Open downstream connections on all listeners except admin's."""
        try:
            stats = await self._client.get("/stats", params={"filter": _CONNECTION_STATS})
        except httpx.HTTPError:
            return None
        return sum(
            count
            for name, count in _parse_stats(stats.text).items()
            # Totals only: skip the per-thread breakdown and the admin listener (that is us).
            if name.count(".worker_") == 0
            and ".main_thread." not in name
            and not name.startswith("listener.admin.")
        )

    async def drain_inbound(self) -> bool:
        """Start a graceful drain of inbound listeners: they close after --drain-time-s."""
        try:
            answer = await self._client.post("/drain_listeners?inboundonly&graceful")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    async def prometheus(self) -> str:
        """Envoy's own metrics in Prometheus text format; empty when Envoy is unreachable."""
        try:
            answer = await self._client.get("/stats/prometheus")
        except httpx.HTTPError:
            return ""
        return answer.text if answer.status_code == 200 else ""


def _parse_stats(text: str) -> dict[str, int]:
    counters: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip().isdigit():
            counters[name.strip()] = int(value)
    return counters


def _describe(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return str(error) or type(error).__name__
