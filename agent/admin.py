"""The few calls the agent makes to Envoy's admin API.

Admin answers HTTP/1.0 with 426, so this is an HTTP/1.1 client: aiohttp's, because the status
server already loads aiohttp and a second HTTP stack (httpx) cost the agent ~6 MB of RSS.
Connections are not kept alive: Envoy is killed and restarted under us, and a pooled socket to
a dead Envoy would turn the first poll after a restart into a spurious failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import aiohttp

from istiolite.agent.policy import Observation

# server.state is deliberately not read here: the gauge reads 0 (LIVE) before Envoy has set
# it, while /ready reports the state Envoy is really in.
_CONFIG_STATS = r"^(listener_manager\.lds|cluster_manager\.cds)\.update_success$"
# Per-listener gauges: server.total_connections is only refreshed at the stats flush (5 s).
_CONNECTION_STATS = r"^listener\..*\.downstream_cx_active$"

AdminError = (aiohttp.ClientError, TimeoutError)


class EnvoyAdmin:
    def __init__(self, port: int, *, timeout: float) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def observe(self) -> Observation:
        """Envoy's state (from /ready) and whether LDS and CDS have been applied."""
        try:
            status, state = await self._request("GET", "/ready")
            if status not in (200, 503):
                return Observation(None, error=f"/ready answered HTTP {status}")
            _, stats = await self._request("GET", "/stats", {"filter": _CONFIG_STATS})
        except AdminError as error:
            return Observation(None, error=_describe(error))
        counters = _parse_stats(stats)
        return Observation(
            state=state.strip(),
            lds_updates=counters.get("listener_manager.lds.update_success", 0),
            cds_updates=counters.get("cluster_manager.cds.update_success", 0),
        )

    async def active_connections(self) -> int | None:
        """Open downstream connections on all listeners except admin's."""
        try:
            _, stats = await self._request("GET", "/stats", {"filter": _CONNECTION_STATS})
        except AdminError:
            return None
        return sum(
            count
            for name, count in _parse_stats(stats).items()
            # Totals only: skip the per-thread breakdown and the admin listener (that is us).
            if name.count(".worker_") == 0
            and ".main_thread." not in name
            and not name.startswith("listener.admin.")
        )

    async def drain_listeners(self, *, inbound_only: bool) -> bool:
        """Start a graceful drain of the listeners (a sidecar's inbound ones only, as Istio
        does: its outbound side serves the app until the end): they close after --drain-time-s.
        """
        query = "inboundonly&graceful" if inbound_only else "graceful"
        try:
            status, _ = await self._request("POST", f"/drain_listeners?{query}")
        except AdminError:
            return False
        return status == 200

    async def prometheus(self) -> str:
        """Envoy's own metrics in Prometheus text format; empty when Envoy is unreachable."""
        try:
            status, text = await self._request("GET", "/stats/prometheus")
        except AdminError:
            return ""
        return text if status == 200 else ""

    async def _request(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        async with self._client().request(method, self.base + path, params=params) as answer:
            return answer.status, await answer.text()

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it was created on.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session


def _parse_stats(text: str) -> dict[str, int]:
    counters: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip().isdigit():
            counters[name.strip()] = int(value)
    return counters


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ClientConnectorError):
        reason = os.strerror(error.os_error.errno) if error.os_error.errno else error.os_error
        return f"cannot connect to {error.host}:{error.port}: {reason}"
    return str(error) or type(error).__name__
