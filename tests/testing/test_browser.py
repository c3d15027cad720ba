"""The test browser (istiolite/testing/browser.py) on a page served on loopback.

Skipped when Debian's chromium is not installed, unless ISTIOLITE_REQUIRE_BROWSER=1 (as CI
sets it), where that is a failure (tests/browser_tier.py).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from istiolite.testing.browser import BrowserError, Chromium, is_local_url
from tests.browser_tier import chromium_or_skip

PAGE = """<!DOCTYPE html><html><head><style>.alarm{color:red}</style></head><body>
<p id="said" class="alarm">{said}</p>
<form method="post" action="/say"><input name="words"><button>Say</button></form>
</body></html>"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    with Chromium(chromium_or_skip(), profile=tmp_path / "profile", width=640) as made:
        yield made


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """A page with a red paragraph and a form that posts back and redirects, as sign-in does."""
    said = ["nothing yet"]

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("{said}", said[-1]), content_type="text/html")

    async def say(request: web.Request) -> web.Response:
        said.append(str((await request.post())["words"]))
        return web.Response(status=303, headers={"Location": "/"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/say", say)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    try:
        yield tcp.name
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:9080/productpage", True),
        ("http://localhost:9080/", True),
        ("http://198.18.0.15:9080/productpage", True),
        ("https://198.18.255.1/", True),
        ("http://198.19.0.1/", False),
        ("http://10.0.0.1/", False),
        ("http://192.168.1.1/", False),
        ("http://example.com/", False),
        ("file:///etc/passwd", False),
        ("http://[::1]:9080/", False),  # not let through the browser's resolver rules
    ],
)
def test_the_browser_goes_only_to_addresses_on_this_machine(url: str, local: bool) -> None:
    assert is_local_url(url) is local


async def test_reads_computed_styles_submits_forms_and_takes_pictures(
    browser: Chromium, site: str
) -> None:
    # The browser blocks; the page's server runs on this loop, so the browser gets a thread.
    def visit() -> tuple[str, str, bytes]:
        browser.open(site)
        color = browser.evaluate("getComputedStyle(document.getElementById('said')).color")
        browser.navigate_by(
            "document.querySelector('input').value = 'hello'; document.forms[0].submit()"
        )
        return (
            color,
            browser.evaluate("document.getElementById('said').textContent"),
            browser.screenshot(),
        )

    color, said, picture = await asyncio.to_thread(visit)

    assert (color, said) == ("rgb(255, 0, 0)", "hello")
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(picture[16:20], "big") == 640  # the width asked for


def test_an_address_off_this_machine_is_refused_before_anything_is_sent(
    browser: Chromium,
) -> None:
    with pytest.raises(BrowserError, match=re.escape("only loopback or 198.18.0.0/16")):
        browser.open("http://10.1.2.3/")


def test_a_page_that_cannot_load_says_why(browser: Chromium) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with pytest.raises(BrowserError, match="ERR_CONNECTION_REFUSED"):
            browser.open(url)
