"""Send batches of HTTP requests from inside a workload; results as JSON.

The end-to-end scenarios send requests "from workload X", so the requests must leave from
X's network namespace (or pod) and pass X's sidecar. Starting a Python client per request
would make 1,000 requests take minutes, so this program runs once per workload and serves
batches: one JSON object per line on stdin, one JSON line of results per batch on stdout,
until stdin closes.

    {"url": "http://reviews:9080/reviews/1", "n": 1000, "concurrency": 8,
     "method": "GET", "headers": {"end-user": "jason"}, "body": null, "timeout": 10}
 -> {"replies": [{"status": 200, "latency": 0.0042, "body": {...}, "error": null}, ...]}

`status` is null when no HTTP answer came back, `body` is the decoded JSON or, when the
answer is not JSON, its text, `headers` the response headers Envoy adds (`x-envoy-*`, the
flags that say why it answered itself). It needs Python 3.11+ and aiohttp only (like the
sample app), so the same file can be copied into any pod of the sample on a real cluster.

`BatchClient` is the other end: it starts this program where the requests must come from (a
command line such as `ip netns exec NS python3 loadclient.py` or `kubectl exec -i ...`) and
sends it batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    """One request's outcome, as the scenarios see it."""

    status: int | None
    latency: float  # seconds, from sending the request to the end of the body
    body: Any
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # x-envoy-* response headers

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when it is not one)."""
        return self.body if isinstance(self.body, dict) else {}


def replies_from_json(raw: dict[str, Any]) -> list[Reply]:
    return [Reply(**r) for r in raw["replies"]]


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:2000].decode("utf-8", "replace")


async def _batch(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import aiohttp  # noqa: PLC0415 - only the serving process needs it

    n, concurrency = int(spec.get("n", 1)), max(1, int(spec.get("concurrency", 1)))
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout", 10)))
    body = spec.get("body")
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(spec.get("headers") or {})
    if data is not None:
        headers.setdefault("content-type", "application/json")
    replies: list[dict[str, Any]] = [{}] * n
    # A connection pool of `concurrency` keep-alive connections: requests are routed one by
    # one by the sidecar, but a new connection per request would measure connects.
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                replies[i] = await _one(session, spec, headers, data)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return replies


async def _one(
    session: Any, spec: dict[str, Any], headers: dict[str, str], data: Any
) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415

    began = time.perf_counter()
    try:
        async with session.request(
            spec.get("method", "GET"), spec["url"], headers=headers, data=data
        ) as response:
            raw = await response.read()
            status = response.status
            envoy = {
                k.lower(): v
                for k, v in response.headers.items()
                if k.lower().startswith("x-envoy-")
            }
    except (aiohttp.ClientError, TimeoutError) as error:
        detail = f"{type(error).__name__}: {error}"
        return {
            "status": None,
            "latency": time.perf_counter() - began,
            "body": None,
            "error": detail,
        }
    return {
        "status": status,
        "latency": time.perf_counter() - began,
        "body": _decode(raw),
        "error": None,
        "headers": envoy,
    }


class LoadClientError(RuntimeError):
    """The load client exited or refused a batch; see its log."""


class BatchClient:
    """This program running elsewhere (`argv`), sent batches over its stdin and stdout."""

    def __init__(self, argv: Sequence[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as errors:
            self.process = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def batch(self, spec: dict[str, Any]) -> list[Reply]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # it exited: readline() below says so
            self.process.stdin.write(json.dumps(spec).encode() + b"\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise LoadClientError(f"the load client exited ({self.process.poll()}); see {self.log}")
        answer = json.loads(line)
        if "error" in answer:
            raise LoadClientError(f"the load client rejected the batch: {answer['error']}")
        return replies_from_json(answer)

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            answer: dict[str, Any] = {"replies": await _batch(json.loads(line))}
        except Exception as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())
