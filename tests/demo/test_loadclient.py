"""The in-workload request helper: batches in, one JSON line of replies out."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from istiolite.demo import loadclient
from istiolite.demo.loadclient import Reply, replies_from_json


@pytest.fixture
async def server() -> AsyncIterator[str]:
    seen = {"n": 0}

    async def answer(request: web.Request) -> web.Response:
        seen["n"] += 1
        if request.path == "/text":
            return web.Response(status=503, text="upstream connect error")
        body = await request.text()
        return web.json_response(
            {"n": seen["n"], "user": request.headers.get("end-user"), "got": body}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _batches(*specs: dict[str, object]) -> list[list[Reply]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        loadclient.__file__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    lines = b"".join(json.dumps(s).encode() + b"\n" for s in specs)
    out, _ = await process.communicate(lines)
    assert process.returncode == 0
    return [replies_from_json(json.loads(line)) for line in out.splitlines()]


async def test_a_batch_of_requests_comes_back_in_order_with_json_bodies(server: str) -> None:
    [replies] = await _batches(
        {"url": server + "/x", "n": 40, "concurrency": 8, "headers": {"end-user": "jason"}}
    )
    assert len(replies) == 40 and all(r.ok for r in replies)
    assert {r.json["user"] for r in replies} == {"jason"}
    assert sorted(r.json["n"] for r in replies) == list(range(1, 41))
    assert all(r.latency > 0 for r in replies)


async def test_bodies_that_are_not_json_come_back_as_text(server: str) -> None:
    [[reply]] = await _batches({"url": server + "/text"})
    assert reply.status == 503 and not reply.ok
    assert reply.body == "upstream connect error" and reply.json == {}


async def test_a_post_sends_its_json_body(server: str) -> None:
    [[reply]] = await _batches(
        {"url": server + "/control", "method": "POST", "body": {"delay": "2s"}}
    )
    assert json.loads(reply.json["got"]) == {"delay": "2s"}


async def test_no_answer_is_a_reply_without_status_and_batches_keep_coming(server: str) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    refused, fine = await _batches({"url": closed, "n": 2}, {"url": server + "/x"})
    assert [r.status for r in refused] == [None, None]
    assert all(r.error and "Connect" in r.error for r in refused)
    assert fine[0].ok
