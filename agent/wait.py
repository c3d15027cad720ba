"""`pilot-agent wait`: block until the local proxy is ready, for apps that must not start
before their sidecar can carry traffic (run it as a postStart hook or before the app)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from istiolite.agent.settings import WaitSettings


async def wait_until_ready(settings: WaitSettings, *, echo: Callable[[str], None]) -> int:
    """0 once /healthz/ready answers 200; 1 (after saying why) when the timeout passes."""
    url = f"http://127.0.0.1:{settings.status_port}/healthz/ready"
    deadline = time.monotonic() + settings.timeout
    last = "no answer yet"
    timeout = aiohttp.ClientTimeout(total=max(settings.period, 1.0))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            try:
                async with session.get(url) as answer:
                    status, text = answer.status, await answer.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                last = f"{url}: {error or type(error).__name__}"
            else:
                if status == 200:
                    echo("Envoy is ready")
                    return 0
                last = f"{url}: HTTP {status}: {text.strip()}"
            if time.monotonic() >= deadline:
                echo(f"timed out after {settings.timeout:g}s waiting for Envoy: {last}")
                return 1
            await asyncio.sleep(settings.period)
