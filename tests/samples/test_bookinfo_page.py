"""productpage's page for browsers: what it shows, how it is chosen, and signing in.

The page is read back with html.parser into an ElementTree, which also checks that every
element is closed where it was opened, so a test asks `.//span[@data-color]` rather than
searching text. Upstream answers are made up here (hostile ones included); the services run
for real on loopback where the HTTP side matters (Accept, cookies, forwarded headers).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx2
import pytest
from aiohttp import web

from samples.bookinfo.app import bookinfo

VOID = {"meta", "input", "br", "img", "link", "hr"}
CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SAFARI = "application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,*/*;q=0.5"
HOSTILE = '<script>alert(1)</script>"\' onmouseover="alert(2)" </style><b>&amp;'


# --- reading the page ----------------------------------------------------------------------


class TreeBuilder(HTMLParser):
    """HTML into an ElementTree; a tag closed out of order fails the test."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = ET.Element("document")
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = ET.SubElement(self.open[-1], tag, {k: v or "" for k, v in attrs})
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ET.SubElement(self.open[-1], tag, {k: v or "" for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        current = self.open[-1]
        if len(current):
            current[-1].tail = (current[-1].tail or "") + data
        else:
            current.text = (current.text or "") + data


def parse(page: str) -> ET.Element:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.open == [builder.root], f"unclosed: {[e.tag for e in builder.open[1:]]}"
    return builder.root


def text(element: ET.Element) -> str:
    return " ".join("".join(element.itertext()).split())


def stars(page: ET.Element) -> list[tuple[str, int, int]]:
    """(colour, rating, filled shapes) per row of stars."""
    return [
        (
            row.get("data-color", ""),
            int(row.get("data-stars", "-1")),
            len(row.findall(".//path[@fill='currentColor']")),
        )
        for row in page.iterfind(".//span[@data-color]")
    ]


def error_boxes(page: ET.Element) -> dict[str, str]:
    return {box.get("data-upstream", ""): text(box) for box in page.iterfind(".//div[@role]")}


# --- what productpage gathered, as its JSON holds it -----------------------------------------


def upstream(body: object, *, status: int | None = 200, error: str | None = None) -> Any:
    return {"url": "http://upstream.invalid/", "status": status, "error": error, "body": body}


def reviews_body(version: str, *, ratings_error: str | None = None) -> dict[str, Any]:
    color = bookinfo.STAR_COLORS.get(version)
    given = {"Reviewer1": 5, "Reviewer2": 4} if ratings_error is None else {}
    reviews: list[dict[str, Any]] = [
        {"reviewer": who, "text": said}
        if color is None
        else {"reviewer": who, "text": said, "stars": given.get(who), "color": color}
        for who, said in bookinfo.REVIEWS
    ]
    ratings = None if color is None else upstream({}, error=ratings_error)
    return {
        "version": version,
        "instance": f"reviews-{version}-0",
        "reviews": reviews,
        "ratings": ratings,
    }


def gathered(*, details: Any = None, reviews: Any = None, version: str = "v1") -> dict[str, Any]:
    return {
        "product": 0,
        "details": details or upstream({"product": 0, **bookinfo.BOOK}),
        "reviews": reviews or upstream(reviews_body(version)),
    }


def render(page: dict[str, Any], *, user: str | None = None) -> ET.Element:
    return parse(bookinfo.render_product_page(page, user=user, served_by="productpage v1 on pp"))


# --- what the page shows -----------------------------------------------------------------------


def test_page_shows_the_book_and_its_details() -> None:
    page = render(gathered())

    assert text(page.find(".//h1")) == "The Tempest"  # type: ignore[arg-type]
    details = page.find(".//section[@id='details']")
    assert details is not None
    terms = [text(dt) for dt in details.iterfind(".//dt")]
    values = [text(dd) for dd in details.iterfind(".//dd")]
    assert dict(zip(terms, values, strict=True))["Publisher"] == "Sample House"
    assert error_boxes(page) == {}


def test_reviews_v1_show_no_stars() -> None:
    page = render(gathered(version="v1"))

    reviews = page.find(".//section[@id='reviews']")
    assert reviews is not None
    assert [text(q.find("footer")) for q in reviews.iterfind(".//blockquote")] == [  # type: ignore[arg-type]
        "Reviewer1",
        "Reviewer2",
    ]
    assert stars(page) == []
    assert "Reviews served by reviews-v1-0 (v1)" in text(reviews)


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
def test_reviews_v2_and_v3_show_filled_stars_in_their_color(version: str, color: str) -> None:
    page = render(gathered(version=version))

    assert stars(page) == [(color, 5, 5), (color, 4, 4)]
    row = page.find(".//span[@data-color]")
    assert row is not None
    assert f"stars-{color}" in row.get("class", "").split()
    assert len(row.findall(".//svg")) == bookinfo.MAX_STARS


def test_star_colors_are_css_colors_a_browser_computes() -> None:
    style = bookinfo.PAGE_STYLE

    assert ".stars-black{color:black}" in style
    assert ".stars-red{color:red}" in style


def test_a_failed_reviews_call_shows_an_error_box_and_the_details_still() -> None:
    failed = upstream(
        {"error": "fault injected by a bookinfo knob"},
        status=503,
        error="reviews unavailable: HTTP 503",
    )
    page = render(gathered(reviews=failed))

    boxes = error_boxes(page)
    assert list(boxes) == ["reviews"]
    assert "reviews unavailable: HTTP 503" in boxes["reviews"]
    assert "fault injected by a bookinfo knob" in boxes["reviews"]
    assert page.find(".//section[@id='details']//dl") is not None
    assert page.find(".//section[@id='reviews']//blockquote") is None


def test_an_unreachable_details_shows_an_error_box_and_the_reviews_still() -> None:
    unreachable = upstream(None, status=None, error="details unavailable: Connection refused")
    page = render(gathered(details=unreachable, version="v3"))

    assert list(error_boxes(page)) == ["details"]
    assert "Connection refused" in error_boxes(page)["details"]
    assert text(page.find(".//h1")) == "Book 0"  # type: ignore[arg-type]
    assert [color for color, _, _ in stars(page)] == ["red", "red"]


def test_envoys_own_text_answer_is_shown_in_the_error_box() -> None:
    envoy = "upstream request timeout"
    timed_out = upstream(envoy, status=504, error="reviews unavailable: HTTP 504")
    page = render(gathered(reviews=timed_out))

    box = page.find(".//div[@data-upstream='reviews']/pre")
    assert box is not None
    assert text(box) == envoy


def test_a_failed_ratings_call_shows_ratings_unavailable_instead_of_stars() -> None:
    body = reviews_body("v2", ratings_error="ratings unavailable: HTTP 500")
    page = render(gathered(reviews=upstream(body)))

    assert stars(page) == []
    notes = [text(p) for p in page.iterfind(".//p[@class='rating-error']")]
    assert notes == ["Ratings unavailable: ratings unavailable: HTTP 500"] * 2
    assert error_boxes(page) == {}


def test_hostile_upstream_text_is_shown_as_text_and_never_becomes_markup() -> None:
    review = {"reviewer": HOSTILE, "text": HOSTILE, "stars": 3, "color": f'red" {HOSTILE}'}
    reviews = {"version": HOSTILE, "instance": HOSTILE, "reviews": [review], "ratings": {}}
    book = {"title": HOSTILE, "author": HOSTILE, "publisher": HOSTILE}
    failing = upstream(HOSTILE, status=502, error=HOSTILE)

    for page in (
        render(gathered(details=upstream(book), reviews=upstream(reviews))),
        render(gathered(details=failing, reviews=failing)),
    ):
        assert page.find(".//script") is None
        assert page.find(".//b/b") is None  # the hostile <b> never opened an element
        events = [a for e in page.iter() for a in e.attrib if a.startswith("on")]
        assert events == []
        assert HOSTILE in "".join(page.itertext())
    shown = render(gathered(details=upstream(book), reviews=upstream(reviews)))
    assert text(shown.find(".//h1")) == " ".join(HOSTILE.split())  # type: ignore[arg-type]
    assert stars(shown) == [("black", 3, 3)]  # an unknown colour is not passed on as CSS


@pytest.mark.parametrize("given", ["5", True, 6, -1, 2.5, None])
def test_a_rating_that_is_not_0_to_5_stars_is_not_drawn(given: object) -> None:
    body = reviews_body("v3")
    body["reviews"][0]["stars"] = given
    page = render(gathered(reviews=upstream(body)))

    assert stars(page) == [("red", 4, 4)]


def test_page_has_no_scripts_and_loads_nothing() -> None:
    page = render(gathered(version="v3"))

    assert page.find(".//script") is None
    linked = [e.tag for e in page.iter() if {"src", "href"} & set(e.attrib) and e.tag != "a"]
    assert linked == []
    assert "@import" not in bookinfo.PAGE_STYLE
    assert "url(" not in bookinfo.PAGE_STYLE


def test_signed_in_user_is_named_and_can_sign_out() -> None:
    page = render(gathered(), user="jason")

    assert text(page.find(".//b[@id='user']")) == "jason"  # type: ignore[arg-type]
    assert page.find(".//a[@href='/logout']") is not None
    assert page.find(".//form[@action='/login']") is None


def test_anonymous_user_gets_the_sign_in_form() -> None:
    form = render(gathered()).find(".//form[@action='/login']")

    assert form is not None
    assert form.get("method") == "post"
    assert form.find(".//input[@name='username']") is not None


# --- which answer: page or JSON ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (CHROME, True),
        (FIREFOX, True),
        (SAFARI, True),
        ("text/html", True),
        ("text/*", True),
        ("application/json;q=0.5, text/html", True),
        ("", False),
        ("*/*", False),  # curl, aiohttp, httpx
        ("application/json", False),
        ("application/json, text/html", False),  # equal: JSON, as before
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=0", False),
        ("text/html;q=bad, */*", False),
        ("text/html;q=2", False),
    ],
)
def test_a_page_only_when_the_accept_header_prefers_html(accept: str, page: bool) -> None:
    assert bookinfo.wants_html(accept) is page


# --- productpage over HTTP ---------------------------------------------------------------------


class Echo:
    """A stand-in upstream that records the headers it got and answers a fixed body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return web.json_response(self.body)


@pytest.fixture
async def productpage() -> AsyncIterator[tuple[str, Echo]]:
    """productpage on loopback in front of a details and a reviews v2 that echo headers."""
    details, reviews = Echo({"title": "The Tempest"}), Echo(reviews_body("v2"))
    runners = []
    try:
        urls = {}
        for name, echo in (("details", details), ("reviews", reviews)):
            app = web.Application()
            app.router.add_get(f"/{name}/{{product}}", echo.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            site = web.SockSite(runner, bookinfo.listen("127.0.0.1", 0))
            await site.start()
            urls[name] = site.name
        settings = bookinfo.Settings(
            service="productpage",
            version="v1",
            host="127.0.0.1",
            port=0,
            details_url=urls["details"],
            reviews_url=urls["reviews"],
            ratings_url="http://ratings.invalid",
            upstream_timeout=5.0,
        )
        runner, url = await bookinfo.start(settings)
        runners.append(runner)
        yield url, reviews
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=5.0, trust_env=False, verify=False) as http:
        yield http


async def test_a_browser_gets_the_page_and_everything_else_json(
    productpage: tuple[str, Echo], client: httpx2.AsyncClient
) -> None:
    url, _ = productpage

    html = await client.get(f"{url}/productpage", headers={"accept": FIREFOX})
    data = await client.get(f"{url}/productpage")

    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert stars(parse(html.text)) == [("black", 5, 5), ("black", 4, 4)]
    assert data.headers["content-type"].startswith("application/json")
    assert data.json()["reviews"]["body"]["reviews"][0]["color"] == "black"
    assert html.headers["vary"] == data.headers["vary"] == "Accept"


async def test_the_start_page_leads_to_the_product_page_as_istios_does(
    productpage: tuple[str, Echo], client: httpx2.AsyncClient
) -> None:
    url, reviews = productpage

    start = parse((await client.get(f"{url}/", headers={"accept": CHROME})).text)
    links = [a.get("href") for a in start.iterfind(".//main//a")]
    for link in links:
        assert stars(parse((await client.get(f"{url}{link}", headers={"accept": CHROME})).text))

    assert links == ["/productpage?u=normal", "/productpage?u=test"]
    assert len(reviews.headers) == 2  # the start page itself calls no upstream


async def test_signing_in_sends_the_user_as_end_user_and_signing_out_stops_it(
    productpage: tuple[str, Echo], client: httpx2.AsyncClient
) -> None:
    url, reviews = productpage

    login = await client.post(f"{url}/login", data={"username": "jason"})
    assert (login.status_code, login.headers["location"]) == (303, "/productpage")
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("user=jason;")
    assert "HttpOnly" in cookie
    # The client sends the cookie back, as a browser does.
    page = parse((await client.get(f"{url}/productpage", headers={"accept": CHROME})).text)
    assert text(page.find(".//b[@id='user']")) == "jason"  # type: ignore[arg-type]
    assert reviews.headers[-1]["end-user"] == "jason"

    logout = await client.get(f"{url}/logout")
    assert logout.status_code == 303
    assert "Max-Age=0" in logout.headers["set-cookie"]
    await client.get(f"{url}/productpage")  # the client's cookie jar drops `user`
    assert "end-user" not in reviews.headers[-1]


async def test_an_end_user_header_wins_over_the_cookie(
    productpage: tuple[str, Echo], client: httpx2.AsyncClient
) -> None:
    url, reviews = productpage

    await client.get(
        f"{url}/productpage", headers={"cookie": "user=jason", "end-user": "someone-else"}
    )

    assert reviews.headers[-1]["end-user"] == "someone-else"


@pytest.mark.parametrize("name", ["", " ", "jason smith", "x" * 65, "jason\u00e9", "<b>"])
async def test_a_user_name_the_header_cannot_carry_is_refused(
    productpage: tuple[str, Echo], client: httpx2.AsyncClient, name: str
) -> None:
    url, _ = productpage

    response = await client.post(f"{url}/login", data={"username": name})

    assert response.status_code == 400
    assert "use 1 to 64 letters, digits" in response.text
    assert "set-cookie" not in response.headers


async def test_a_cookie_the_form_would_refuse_counts_as_nobody(
    productpage: tuple[str, Echo], client: httpx2.AsyncClient
) -> None:
    url, reviews = productpage

    page = await client.get(
        f"{url}/productpage", headers={"cookie": 'user="a b"', "accept": CHROME}
    )

    assert parse(page.text).find(".//form[@action='/login']") is not None
    assert "end-user" not in reviews.headers[-1]
