"""The file registry under a large file: does pilot-discovery keep answering while it parses?

Part 1, the real server: pilot-discovery watches a directory holding the test mesh; a
`BENCH_FILE_MB` (10) MB file of Services and VirtualServices is written into it, then, while it
is being parsed, an edit of another file. Printed: /ready's latency while the file is parsed
(polled every 20 ms), how long the unrelated edit took to show in /debug/configz, how long the
registry took to read and parse the large file (its debug log), and the latency the push after
it reported (counted from the file event).

Part 2, the choice between a thread and a process for parsing (docs/decisions.md): an aiohttp
loop answers /ready while `read_file` parses the same file off the loop, once in a thread and
once in a process (spawned; the resources come back pickled). Printed: /ready's latency and
how long the parse took until its result was usable on the loop.

Part 3, what checking the shape of YAML costs (depth, self-reference, alias bombs:
istiolite.api.yamlstream): loading 2 MB of the same documents with and without the check.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from aiohttp import web

from istiolite.api import yamlstream
from istiolite.discovery.files.reading import Content, read_file
from istiolite.testing.mesh import Discovery, free_port, workdir

MEGABYTES = float(os.environ.get("BENCH_FILE_MB", "10"))
MESH = Path(__file__).parent.parent / "tests" / "discovery" / "testdata" / "mesh.yaml"


def large_file(megabytes: float) -> str:
    """A Service and a VirtualService with a 90/10 split per service, up to `megabytes`."""
    documents: list[str] = []
    size, i = 0, 0
    while size < megabytes * 1e6:
        name = f"svc-{i}"
        for document in (
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: bench}}\n"
            f"spec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}]\n",
            f"apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata: {{name: {name}, namespace: bench}}\nspec:\n  hosts: [{name}]\n"
            f"  http:\n  - route:\n    - destination: {{host: {name}, subset: v1}}\n"
            f"      weight: 90\n    - destination: {{host: {name}, subset: v2}}\n"
            f"      weight: 10\n",
        ):
            documents.append(document)
            size += len(document) + 4
        i += 1
    return "---\n".join(documents)


class Poller:
    """GETs a URL every 20 ms from a thread; records when it asked and how long it took."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.asked: list[tuple[float, float]] = []  # (wall-clock time, latency)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(verify=False, timeout=300) as client:
            while not self._stop.is_set():
                at, began = time.time(), time.perf_counter()
                client.get(self.url)
                self.asked.append((at, time.perf_counter() - began))
                time.sleep(0.02)

    def latencies(self, since: float = 0, until: float = float("inf")) -> list[float]:
        return [latency for at, latency in self.asked if since <= at < until]


def summary(latencies: list[float]) -> str:
    if len(latencies) < 2:
        return f"n={len(latencies)}"
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return (
        f"n={len(latencies)} p50 {1000 * q[49]:.1f} ms, p99 {1000 * q[98]:.1f} ms, "
        f"max {1000 * max(latencies):.0f} ms"
    )


def wait(check: Callable[[], bool], timeout: float = 600) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(0.02)
    return time.monotonic() - began


def server_part(text: str) -> None:
    with workdir() as work:
        config = work / "config"
        config.mkdir()
        (config / "mesh.yaml").write_text(MESH.read_text())
        discovery = Discovery(config, work, extra_args=["--log-level=debug"]).start()
        try:
            _server_round(discovery, config, text)
        finally:
            discovery.stop()


def _server_round(discovery: Discovery, config: Path, text: str) -> None:
    base = f"http://127.0.0.1:{discovery.http_port}"
    client = httpx.Client(verify=False, timeout=300)

    def services() -> int:
        return int(client.get(f"{base}/debug/configz").json()["resources"].get("Service", 0))

    before = services()
    large = config / "large.yaml"
    with Poller(f"{base}/ready") as poller:
        large.write_text(text)
        (config / "extra.yaml").write_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: extra}\n"
            "spec: {ports: [{name: http, port: 80}]}\n"
        )
        edit = wait(lambda: services() > before)
        wait(lambda: services() == before + 1 + text.count("kind: Service\n"))
        wait(lambda: _parsed(discovery.log.read_text(), large) is not None)
    print(f"server: an edit of another file showed in /debug/configz after {1000 * edit:.0f} ms")
    parsed = _parsed(discovery.log.read_text(), large)
    if parsed is None:
        print(f"server: /ready {summary(poller.latencies())}")
        return
    began, ended, reported = parsed
    print(f"server: read and parsed {len(text) / 1e6:.1f} MB in {1000 * (ended - began):.0f} ms")
    print(f"server: /ready while it was parsed: {summary(poller.latencies(began, ended))}")
    print(f"server: /ready after, while it was pushed: {summary(poller.latencies(ended))}")
    print(f"server: the push after it reported {reported} ms after the change")


def _parsed(log: str, path: Path) -> tuple[float, float, int] | None:
    """When the registry began and ended parsing `path` (wall clock), and the next push's
    reported latency. The longest read that found new content is the whole file's (the first
    event, at its creation, may find it still empty)."""
    reads = list(
        re.finditer(
            rf"^(\S+ \S+) DEBUG \S+ read {re.escape(str(path))} in (\d+) ms: Content",
            log,
            re.MULTILINE,
        )
    )
    if not reads:
        return None
    read = max(reads, key=lambda r: int(r[2]))
    push = re.search(r"\((\d+) ms after the change", log[read.end() :])
    if push is None:
        return None
    stamp, millis = read[1].split(",")
    ended = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
    return ended - int(read[2]) / 1000, ended, int(push[1])


def _parse_resources(path: str) -> object:
    return read_file(Path(path), digest=None, known={})


async def _loop_part(executor: Executor, path: Path, name: str) -> None:
    app = web.Application()
    app.router.add_get("/ready", lambda _: _ok())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    loop = asyncio.get_running_loop()
    # Warm: a process pool starts its worker and imports this module at its first task.
    await loop.run_in_executor(executor, _parse_resources, str(MESH))
    poller = Poller(f"http://127.0.0.1:{port}/ready").__enter__()
    began = time.perf_counter()
    outcome = await loop.run_in_executor(executor, _parse_resources, str(path))
    took = time.perf_counter() - began
    await asyncio.to_thread(poller.stop)  # its last request needs this loop to be answered
    assert isinstance(outcome, Content), outcome
    latencies = summary(poller.latencies())
    print(f"{name}: parsed, its resources on the loop after {took:.1f} s; /ready {latencies}")
    await runner.cleanup()


async def _ok() -> web.Response:
    return web.Response(text="ok\n")


def executors() -> Iterator[tuple[str, Executor]]:
    yield "thread ", ThreadPoolExecutor(1)
    yield "process", ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def _unchecked(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=yamlstream.Loader))


def shape_check_part(text: str) -> None:
    timings = {}
    for name, load in (("without", _unchecked), ("with", yamlstream.load_all)):
        began = time.perf_counter()
        load(text)
        timings[name] = time.perf_counter() - began
    print(
        f"yaml: {len(text) / 1e6:.1f} MB loaded in {timings['without']:.2f} s without the shape "
        f"check, {timings['with']:.2f} s with it"
    )


def main() -> None:
    text = large_file(MEGABYTES)
    shape_check_part(text[: text.index("---\n", 2_000_000)])
    server_part(text)
    with workdir() as work:
        path = work / "large.yaml"
        path.write_text(text)
        for name, executor in executors():
            with executor:
                asyncio.run(_loop_part(executor, path, name))
