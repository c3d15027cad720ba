"""productpage in a real browser, in the mesh: the stars' colour follows the routing.

(Named to run after test_lifecycle.py, whose tests need the shared cluster not yet up.)

Headless Chromium (istiolite/testing/browser.py) opens productpage from the host, as a user
would, so the page comes through productpage's sidecar and productpage's calls to reviews are
routed by it. What the browser computed is read back: the colour of each row of stars, and
who is signed in. `PAGE_URL` is the one thing a test here knows about where the page is.

Skipped when Debian's chromium is not installed, unless ISTIOLITE_REQUIRE_BROWSER=1 (as CI
sets it), where that is a failure; skipped, with the reason, when not root.
REFRESH_SCREENSHOT=1 rewrites the README's picture (docs/bookinfo-productpage.png).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from istiolite.demo import NetnsCluster
from istiolite.demo.runtime import productpage_url
from istiolite.testing.browser import Chromium
from istiolite.testing.wait import eventually
from tests.browser_tier import chromium_or_skip

pytestmark = [pytest.mark.netns, pytest.mark.envoy]

ROOT = Path(__file__).parents[2]
NETWORKING = ROOT / "samples" / "bookinfo" / "networking"
SCREENSHOT = ROOT / "docs" / "bookinfo-productpage.png"
BLACK, RED = "rgb(0, 0, 0)", "rgb(255, 0, 0)"
ROUTING_WAIT = 60.0  # new routes reach productpage's Envoy within seconds, even on a busy host

# Each row of stars on the page: its colour as the page names it and as the browser drew it.
READ_PAGE = """JSON.stringify({
  stars: [...document.querySelectorAll('#reviews [data-color]')].map(row => ({
    color: row.dataset.color, drawn: getComputedStyle(row).color, stars: +row.dataset.stars})),
  reviews: document.querySelectorAll('#reviews blockquote').length,
  errors: document.querySelectorAll('[role=alert]').length,
  user: document.getElementById('user')?.textContent ?? null,
})"""
SIGN_IN_AS_JASON = """
document.querySelector('input[name=username]').value = 'jason';
document.querySelector('form.account').submit()"""
SIGN_OUT = "document.querySelector('a[href=\"/logout\"]').click()"


def reviews_to(version: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
    - route:
        - destination:
            host: reviews
            subset: {version}
"""


@pytest.fixture(scope="session", autouse=True)
def chromium() -> str:
    """Autouse, so that a missing browser skips before the demo is deployed for nothing."""
    return chromium_or_skip()


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    profile = tmp_path_factory.mktemp("chromium")
    with Chromium(chromium, profile=profile, width=1000, height=540) as made:  # the page, no more
        yield made


@pytest.fixture
def page_url(cluster: NetnsCluster) -> str:
    """Where the browser finds productpage: its own address in the demo."""
    return productpage_url(cluster.topology)


def read_page(browser: Chromium) -> dict[str, Any]:
    page: dict[str, Any] = json.loads(browser.evaluate(READ_PAGE))
    return page


def shows(browser: Chromium, url: str, color: str | None) -> dict[str, Any] | None:
    """The page once its two reviews carry stars of `color` (None: no stars at all)."""
    browser.open(url)
    page = read_page(browser)
    colors = {row["color"] for row in page["stars"]}
    wanted = set() if color is None else {color}
    return page if page["reviews"] == 2 and colors == wanted else None


def wait_for_stars(browser: Chromium, url: str, color: str | None, *, what: str) -> dict[str, Any]:
    """Until the new routes reach productpage's sidecar and the page shows it."""
    return eventually(
        lambda: shows(browser, url, color), what=what, timeout=ROUTING_WAIT, interval=0.5
    )


def test_the_stars_colour_follows_the_route_to_reviews(
    cluster: NetnsCluster, browser: Chromium, page_url: str, tmp_path: Path
) -> None:
    cluster.reset()
    cluster.apply(NETWORKING / "destination-rule-all.yaml")

    for version, color, drawn in (("v3", "red", RED), ("v2", "black", BLACK)):
        cluster.apply(reviews_to(version))
        page = wait_for_stars(
            browser, page_url, color, what=f"the browser showing reviews {version}'s stars"
        )
        assert page["stars"] == [
            {"color": color, "drawn": drawn, "stars": 5},
            {"color": color, "drawn": drawn, "stars": 4},
        ]
        assert page["errors"] == 0
        picture = browser.screenshot()
        (tmp_path / f"reviews-{version}.png").write_bytes(picture)
        if version == "v3" and os.environ.get("REFRESH_SCREENSHOT") == "1":
            SCREENSHOT.write_bytes(picture)

    cluster.apply(NETWORKING / "virtual-service-all-v1.yaml")
    wait_for_stars(browser, page_url, None, what="the browser showing reviews v1 (no stars)")


def test_signing_in_as_jason_routes_his_page_to_reviews_v2(
    cluster: NetnsCluster, browser: Chromium, page_url: str
) -> None:
    cluster.reset()
    cluster.apply(NETWORKING / "destination-rule-all.yaml")
    cluster.apply(NETWORKING / "virtual-service-reviews-jason-v2.yaml")
    browser.open(page_url)

    browser.navigate_by(SIGN_IN_AS_JASON)

    assert read_page(browser)["user"] == "jason"
    wait_for_stars(browser, page_url, "black", what="jason seeing reviews v2's black stars")
    for _ in range(5):  # every time, not by chance: the cookie names the user on every page
        assert shows(browser, page_url, "black") is not None

    browser.navigate_by(SIGN_OUT)

    assert read_page(browser)["user"] is None
    for _ in range(5):  # everyone else gets reviews v1
        assert shows(browser, page_url, None) is not None
