"""Headless Chromium for tests: open a page, read what it rendered, take its picture.

It is driven with the DevTools protocol over a pipe (`--remote-debugging-pipe`: commands go
in on the browser's fd 3, answers and events come out of its fd 4, each a JSON message ended
by a NUL byte). No port to find or leave open and no websocket client; `--dump-dom` would be
simpler still, but it shows neither computed styles (is a star really red?) nor a page that
was reached by submitting a form.

The browser only ever goes to pages of this machine: loopback, or the demo's network
(198.18.0.0/16, docs/design.md); `open` refuses any other address, and host names other than
localhost do not resolve in it, so Chromium's own background traffic goes nowhere either.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["BrowserError", "Chromium", "find_chromium", "is_local_url"]

LOCAL_NETWORKS = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("198.18.0.0/16"),  # the demo's bridge
)
# Fixed by Chromium for --remote-debugging-pipe.
COMMAND_FD, EVENT_FD = 3, 4
FLAGS = (
    "--headless",
    "--no-sandbox",  # as root (CI), Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*, EXCLUDE 198.18.*",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """The browser failed, timed out, or a page did not load; says what and where."""


def find_chromium() -> str | None:
    """Debian's `chromium`, or None when it is not installed."""
    return shutil.which("chromium")


def is_local_url(url: str) -> bool:
    """Whether `url` names this machine: loopback, localhost, or the demo's 198.18.0.0/16."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname is None:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return False
    return any(address in network for network in LOCAL_NETWORKS)


class Chromium:
    """One headless Chromium with one tab of `width` x `height` pixels; close() ends it."""

    def __init__(
        self,
        binary: str,
        *,
        profile: Path,
        width: int = 1000,
        height: int = 700,
        timeout: float = 60.0,
    ) -> None:
        self.timeout = timeout
        self.log = profile / "chromium.log"
        profile.mkdir(parents=True, exist_ok=True)
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._process, self._commands, self._answers = _launch(binary, profile, self.log)
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})
            self._session: str = attached["sessionId"]
            self._call("Page.enable", session=self._session)
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            self._call("Emulation.setDeviceMetricsOverride", metrics, session=self._session)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def open(self, url: str) -> None:
        """Go to `url` and return once it has loaded; an address off this machine is refused."""
        if not is_local_url(url):
            raise BrowserError(
                f"{url}: the test browser opens only loopback or 198.18.0.0/16 addresses"
            )
        self._events.clear()
        result = self._call("Page.navigate", {"url": url}, session=self._session)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self._wait_for_load(url)

    def navigate_by(self, expression: str) -> None:
        """Run JavaScript that leaves the page (submits a form, follows a link); wait for the
        next page to load."""
        self._events.clear()
        self.evaluate(expression)
        self._wait_for_load(expression)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page, as JSON."""
        params = {"expression": expression, "returnByValue": True}
        result = self._call("Runtime.evaluate", params, session=self._session)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression!r} failed: {details.get('exception', details)}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """The tab as PNG."""
        result = self._call("Page.captureScreenshot", {"format": "png"}, session=self._session)
        return base64.b64decode(result["data"])

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError, BrowserError):
                self._send("Browser.close", {}, session=None)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # Chromium's helpers are in the group it leads (start_new_session).
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        for fd in (self._commands, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- the protocol ------------------------------------------------------------------------

    def _call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        sent = self._send(method, params or {}, session=session)
        for message in self._messages(what=method):
            if message.get("id") == sent:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)
        raise AssertionError("unreachable: _messages ends only by raising")

    def _send(self, method: str, params: dict[str, Any], *, session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _wait_for_load(self, what: str) -> None:
        def loaded(event: dict[str, Any]) -> bool:
            return event.get("method") == "Page.loadEventFired" and (
                event.get("sessionId") == self._session
            )

        if any(map(loaded, self._events)):
            return
        for message in self._messages(what=f"loading {what}"):
            if loaded(message):
                return

    def _messages(self, *, what: str) -> Iterator[dict[str, Any]]:
        """Messages from the browser as they come; raises after `timeout` or if it exits."""
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                yield json.loads(raw)
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self._answers], [], [], max(left, 0))
            if not readable:
                raise BrowserError(f"no answer within {self.timeout:g}s to {what}; see {self.log}")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited during {what}; see {self.log}")
            self._buffer += chunk


def _launch(binary: str, profile: Path, log: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start Chromium with the two pipe ends at its fds 3 and 4; return it and our ends."""
    to_browser, commands = os.pipe()
    answers, from_browser = os.pipe()
    # Parked above 10 so that moving them to 3 and 4 in the child cannot overwrite each other.
    child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
    for fd in (to_browser, from_browser):
        os.close(fd)

    def wire_pipe() -> None:  # in the child, before exec: dup2 leaves 3 and 4 inheritable
        os.dup2(child_ends[0], COMMAND_FD)
        os.dup2(child_ends[1], EVENT_FD)

    argv = [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    try:
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(COMMAND_FD, EVENT_FD),
                preexec_fn=wire_pipe,  # noqa: PLW1509 - dup2 to fixed fds needs the child
                start_new_session=True,
            )
    finally:
        for fd in child_ends:
            os.close(fd)
    return process, commands, answers
