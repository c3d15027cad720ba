#!/usr/bin/env python3
"""A bookinfo-style sample service: productpage, details, reviews or ratings.

One program runs any one of the four services, picked by SERVICE and VERSION, so a single
image serves every Deployment. It needs only the standard library and aiohttp and imports
nothing from istiolite: the mesh has to work for applications that know nothing about it.

The services call each other by plain names (http://reviews:9080) so that, in the mesh, the
sidecar decides which version answers. They forward the user and trace headers they receive,
as Istio asks of every application: a sidecar sees an inbound and an outbound request but
cannot tell that one caused the other, so without the app's help a trace breaks at each hop
and an `end-user` match on a second hop never fires.

Test knobs (a delay, a share of failures) make mesh scenarios deterministic. Failures are
spread by a counter, not at random, so "50% 503" fails exactly every other request and a
test can say how many attempts a retry policy needs. See README.md for the knobs.

productpage answers a browser (an Accept header preferring text/html) with a page built from
the same data as its JSON: the book, its details, the reviews with their stars, and an error
box for a dependency that failed. A user who signs in gets a cookie, and productpage sends
that name on as `end-user`, so routing by user works from a browser as in Istio's bookinfo.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import math
import os
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Final

from aiohttp import ClientError, ClientSession, ClientTimeout, web

SERVICES: Final = ("productpage", "details", "reviews", "ratings")
VERSIONS: Final = ("v1", "v2", "v3")

# The headers Istio's documentation asks applications to forward.
PROPAGATED_HEADERS: Final = (
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
)

DELAY_HEADER: Final = "x-bookinfo-delay"
FAIL_HEADER: Final = "x-bookinfo-fail"
TARGET_HEADER: Final = "x-bookinfo-target"
KNOB_HEADERS: Final = (DELAY_HEADER, FAIL_HEADER, TARGET_HEADER)

# Long enough for in-flight requests, short enough to finish inside a pod's grace period.
SHUTDOWN_TIMEOUT: Final = 5.0

BOOK: Final[Mapping[str, object]] = {
    "title": "The Tempest",
    "author": "William Shakespeare",
    "year": 1611,
    "type": "paperback",
    "pages": 208,
    "publisher": "Sample House",
    "language": "English",
}
REVIEWS: Final = (
    ("Reviewer1", "A storm, an island and a magician who finally lets go. Worth every page."),
    ("Reviewer2", "Shorter than I expected and funnier than I remembered."),
)
RATINGS: Final[Mapping[str, int]] = {"Reviewer1": 5, "Reviewer2": 4}
STAR_COLORS: Final[Mapping[str, str]] = {"v2": "black", "v3": "red"}
MAX_STARS: Final = 5

USER_COOKIE: Final = "user"
USER_NAME: Final = re.compile(r"[A-Za-z0-9._@-]{1,64}")
HTML_TYPES: Final = ("text/html", "application/xhtml+xml")
# The page carries no script and loads nothing; should escaping ever miss, nothing runs.
PAGE_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m)")
UNIT_SECONDS: Final[Mapping[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0}
CONTROL_FIELDS: Final = ("delay", "fail_status", "fail_ratio")

log = logging.getLogger("bookinfo")


# --- knobs -------------------------------------------------------------------------------


class KnobError(ValueError):
    """A knob value that cannot be used; the message says what is accepted."""


def parse_duration(value: object, *, where: str) -> float:
    """Seconds from a duration written like Istio's: `500ms`, `2s`, `1.5s`, `1m`."""
    match = DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise KnobError(
            f"{where}: {value!r} is not a duration; use a number followed by ms, s or m, "
            "like 500ms or 2s"
        )
    return float(match[1]) * UNIT_SECONDS[match[2]]


def format_duration(seconds: float) -> str:
    return f"{seconds:g}s"


def parse_status(value: object, *, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
        raise KnobError(f"{where}: {value!r} is not an HTTP error status; use 400 to 599")
    return value


def parse_ratio(value: object, *, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise KnobError(f"{where}: {value!r} is not a ratio; use a number from 0 to 1, like 0.5")
    # Through str so that 0.1 is exactly 1/10 and the failure pattern has no rounding drift.
    return Fraction(str(value))


@dataclass(frozen=True, slots=True)
class Knobs:
    """Faults set at runtime through /control; they apply to every request the service serves."""

    delay: float = 0.0
    fail_status: int = 503
    fail_ratio: Fraction = Fraction(0)

    @classmethod
    def from_json(cls, body: object) -> Knobs:
        if not isinstance(body, dict):
            raise KnobError(
                'control: the body must be a JSON object like {"fail_status": 503, '
                '"fail_ratio": 0.5}'
            )
        unknown = sorted(set(body) - set(CONTROL_FIELDS))
        if unknown:
            raise KnobError(
                f"control: unknown field(s) {unknown}; accepted: {list(CONTROL_FIELDS)}"
            )
        knobs = cls()
        if "delay" in body:
            knobs = replace(knobs, delay=parse_duration(body["delay"], where="control.delay"))
        if "fail_status" in body:
            status = parse_status(body["fail_status"], where="control.fail_status")
            # Naming only a status means "always fail with it".
            knobs = replace(knobs, fail_status=status, fail_ratio=Fraction(1))
        if "fail_ratio" in body:
            ratio = parse_ratio(body["fail_ratio"], where="control.fail_ratio")
            knobs = replace(knobs, fail_ratio=ratio)
        return knobs

    def to_json(self) -> dict[str, object]:
        return {
            "delay": format_duration(self.delay),
            "fail_status": self.fail_status,
            "fail_ratio": float(self.fail_ratio),
        }


def fails(ratio: Fraction, n: int) -> bool:
    """Whether request number n (from 0) fails, spreading failures evenly, first one first.

    Ratio 1/2 fails requests 0, 2, 4, ...; ratio 1/5 fails 0, 5, 10, ... So with "50% 503",
    calls made one at a time fail exactly half the time, and every one succeeds on its retry.
    """
    return math.ceil((n + 1) * ratio) > math.ceil(n * ratio)


@dataclass(frozen=True, slots=True)
class RequestKnobs:
    """Knobs carried by one request's headers, and the ones to pass on to upstreams."""

    delay: float | None = None
    fail_status: int | None = None
    forward: Mapping[str, str] = field(default_factory=dict)


def request_knobs(headers: Mapping[str, str], *, service: str, version: str) -> RequestKnobs:
    """Knob headers apply to the service that receives them, unless they name another target.

    Untargeted knobs stop here so that a delay sent to productpage does not also delay every
    service behind it. Targeted ones (`ratings` or `ratings-v1`) travel with the request until
    they reach their target.
    """
    present = {name: headers[name] for name in KNOB_HEADERS if name in headers}
    target = present.get(TARGET_HEADER)
    if target is not None and target.strip() not in (service, f"{service}-{version}"):
        return RequestKnobs(forward=present)
    delay = present.get(DELAY_HEADER)
    status = present.get(FAIL_HEADER)
    return RequestKnobs(
        delay=None if delay is None else parse_duration(delay, where=DELAY_HEADER),
        fail_status=None if status is None else parse_status(status, where=FAIL_HEADER),
    )


# --- process state -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    service: str
    version: str
    host: str
    port: int
    details_url: str
    reviews_url: str
    ratings_url: str
    upstream_timeout: float


@dataclass(slots=True)
class State:
    knobs: Knobs = field(default_factory=Knobs)
    decided: int = 0  # requests the runtime failure mix has decided since the last /control
    paths: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    last_headers: dict[str, str] = field(default_factory=dict)

    def next_failure(self) -> int | None:
        n, self.decided = self.decided, self.decided + 1
        return self.knobs.fail_status if fails(self.knobs.fail_ratio, n) else None


SETTINGS: Final = web.AppKey("settings", Settings)
STATE: Final = web.AppKey("state", State)
SESSION: Final = web.AppKey("session", ClientSession)


def header_dict(headers: Mapping[str, str]) -> dict[str, str]:
    """Every header once, lower-cased; repeated headers joined as HTTP allows."""
    joined: dict[str, list[str]] = {}
    for name, value in headers.items():
        joined.setdefault(name.lower(), []).append(value)
    return {name: ", ".join(values) for name, values in joined.items()}


def reply(request: web.Request, status: int, fields: Mapping[str, object]) -> web.Response:
    """Every answer says who answered and echoes what arrived, so routing is visible."""
    settings = request.app[SETTINGS]
    request.app[STATE].statuses[status] += 1
    body = {
        "service": settings.service,
        "version": settings.version,
        "instance": socket.gethostname(),
        "method": request.method,
        "path": request.path_qs,
        "headers": header_dict(request.headers),
        **fields,
    }
    return web.json_response(body, status=status)


# --- upstream calls ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upstreams:
    session: ClientSession
    headers: Mapping[str, str]

    async def get(self, name: str, url: str) -> dict[str, Any]:
        """Call one upstream; failures become data so the caller can still answer.

        `status` is None when no HTTP answer came back (refused, reset, timed out). `body` is
        the JSON object the upstream sent, or its text (Envoy's own fault and timeout answers
        are plain text).
        """
        try:
            async with self.session.get(url, headers=dict(self.headers)) as response:
                raw = await response.read()
        except (ClientError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            return {
                "url": url,
                "status": None,
                "error": f"{name} unavailable: {detail}",
                "body": None,
            }
        ok = response.status < 400
        return {
            "url": url,
            "status": response.status,
            "error": None if ok else f"{name} unavailable: HTTP {response.status}",
            "body": decode_body(raw),
        }


def decode_body(raw: bytes) -> object:
    try:
        decoded: object = json.loads(raw)
    except ValueError:
        return raw[:1000].decode("utf-8", "replace")
    return decoded


def propagated(headers: Mapping[str, str], *, user: str | None = None) -> dict[str, str]:
    """The headers to forward; a signed-in `user` stands for `end-user` unless one arrived."""
    forwarded = {name: headers[name] for name in PROPAGATED_HEADERS if name in headers}
    if user is not None:
        forwarded.setdefault("end-user", user)
    return forwarded


# --- the four services -------------------------------------------------------------------


async def productpage(settings: Settings, upstreams: Upstreams, product: int) -> dict[str, Any]:
    details, reviews = await asyncio.gather(
        upstreams.get("details", f"{settings.details_url}/details/{product}"),
        upstreams.get("reviews", f"{settings.reviews_url}/reviews/{product}"),
    )
    return {"product": product, "details": details, "reviews": reviews}


async def details(settings: Settings, upstreams: Upstreams, product: int) -> dict[str, Any]:
    return {"product": product, **BOOK}


async def reviews(settings: Settings, upstreams: Upstreams, product: int) -> dict[str, Any]:
    color = STAR_COLORS.get(settings.version)
    if color is None:  # v1 shows no stars and never calls ratings
        plain = [{"reviewer": who, "text": text} for who, text in REVIEWS]
        return {"product": product, "reviews": plain, "ratings": None}
    ratings = await upstreams.get("ratings", f"{settings.ratings_url}/ratings/{product}")
    stars: Mapping[str, object] = {}
    if ratings["error"] is None and isinstance(ratings["body"], dict):
        stars = ratings["body"].get("ratings", {})
    rated: list[dict[str, object]] = [
        {"reviewer": who, "text": text, "stars": stars.get(who), "color": color}
        for who, text in REVIEWS
    ]
    return {"product": product, "reviews": rated, "ratings": ratings}


async def ratings(settings: Settings, upstreams: Upstreams, product: int) -> dict[str, Any]:
    return {"product": product, "ratings": dict(RATINGS)}


HANDLERS: Final = {
    "productpage": productpage,
    "details": details,
    "reviews": reviews,
    "ratings": ratings,
}


# --- the page a browser sees -------------------------------------------------------------


def wants_html(accept: str) -> bool:
    """Whether an Accept header prefers a page to JSON, as a browser's does.

    Browsers send `text/html,...,*/*;q=0.8`. curl, aiohttp and httpx send `*/*`, under which
    HTML and JSON are equal, so they keep getting JSON: a page only when it is preferred.
    """
    ranges = [media_range(part) for part in accept.split(",") if part.strip()]
    for_html = max(quality(ranges, media_type) for media_type in HTML_TYPES)
    return for_html > 0 and for_html > quality(ranges, "application/json")


def media_range(part: str) -> tuple[str, float]:
    kind, *params = (piece.strip() for piece in part.split(";"))
    weight = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
    return kind.lower(), weight if 0 <= weight <= 1 else 0.0


def quality(ranges: Sequence[tuple[str, float]], media_type: str) -> float:
    """The weight of the most specific range that names the type (RFC 9110, 12.5.1)."""
    for pattern in (media_type, media_type.partition("/")[0] + "/*", "*/*"):
        weights = [weight for kind, weight in ranges if kind == pattern]
        if weights:
            return max(weights)
    return 0.0


def esc(value: object) -> str:
    """Text for HTML, body or attribute: the page shows what upstreams sent, whatever it is."""
    return html.escape(str(value), quote=True)


def as_mapping(value: object) -> Mapping[str, Any]:
    """A JSON object from an upstream, or {}: a page must render whatever came back."""
    return value if isinstance(value, dict) else {}


# Author and year are in the heading's byline.
DETAIL_FIELDS: Final = (
    ("type", "Type"),
    ("pages", "Pages"),
    ("publisher", "Publisher"),
    ("language", "Language"),
)
UNAVAILABLE: Final = {
    "details": "Sorry, the details of this book are unavailable right now.",
    "reviews": "Sorry, the reviews of this book are unavailable right now.",
}

# One five-pointed star; `currentColor` makes it take the colour of its row of stars.
STAR_PATH: Final = "M12 2l3 6.3 6.9 1-5 4.8 1.2 6.9L12 17.8 5.9 21l1.2-6.9-5-4.8 6.9-1z"

PAGE_STYLE: Final = """
body{margin:0;font:15px/1.45 "Liberation Sans",Arial,sans-serif;color:#1f2933;background:#eef1f4}
header{display:flex;align-items:center;justify-content:space-between;padding:10px 28px;
  background:#23364a;color:#fff}
header .brand{font-size:19px;font-weight:bold;color:#fff;text-decoration:none}
header form{margin:0}
header input{padding:4px 6px;border:0;border-radius:3px;width:130px}
header button{padding:4px 10px;border:0;border-radius:3px;background:#4f9bd9;color:#fff}
header a{color:#cfe3f5}
main{max-width:940px;margin:0 auto;padding:18px 28px}
h1{margin:6px 0 2px;font-size:28px}
.byline{margin:0 0 16px;color:#52606d}
.columns{display:flex;gap:20px;align-items:flex-start}
section{flex:1;background:#fff;border-radius:6px;padding:14px 20px;
  box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{margin:0 0 10px;font-size:18px;border-bottom:1px solid #e4e7eb;padding-bottom:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0}
dt{font-weight:bold;color:#52606d}
dd{margin:0}
blockquote{margin:0 0 14px;padding:0 0 10px;border-bottom:1px solid #f0f2f4}
blockquote p{margin:0 0 4px;font-style:italic}
blockquote footer{color:#52606d;font-size:13px}
.stars{display:inline-flex;gap:2px;margin-top:4px}
.stars svg{width:20px;height:20px}
.stars-black{color:black}
.stars-red{color:red}
.rating-error{margin:4px 0 0;color:#a61b1b;font-size:13px;font-style:normal}
.served{margin:10px 0 0;color:#7b8794;font-size:12px}
.error{border:1px solid #e3a5a5;background:#fdecec;color:#7a1010;border-radius:4px;
  padding:10px 14px}
.error p{margin:4px 0 0}
.error pre{white-space:pre-wrap;margin:6px 0 0;font-size:12px}
.landing ul{padding-left:20px}
body>footer{max-width:940px;margin:0 auto;padding:0 28px 18px;color:#7b8794;font-size:12px}
"""


def render_product_page(page: Mapping[str, Any], *, user: str | None, served_by: str) -> str:
    """productpage as a browser shows it, from the data its JSON answer holds."""
    details = as_mapping(page.get("details"))
    book = as_mapping(details.get("body")) if details.get("error") is None else {}
    title = book.get("title") or f"Book {page.get('product', 0)}"
    byline = ", ".join(esc(book[key]) for key in ("author", "year") if key in book)
    content = (
        f'<h1>{esc(title)}</h1>\n<p class="byline">{byline}</p>\n'
        '<div class="columns">\n'
        f'<section id="details"><h2>Book Details</h2>{details_html(details)}</section>\n'
        f'<section id="reviews"><h2>Book Reviews</h2>'
        f"{reviews_html(as_mapping(page.get('reviews')))}</section>\n"
        "</div>"
    )
    return page_html(title=title, content=content, user=user, served_by=served_by)


def render_landing_page(*, user: str | None, served_by: str) -> str:
    """The start page of Istio's bookinfo: what this is, and the way to the product page."""
    content = (
        '<div class="landing"><h1>Bookinfo sample</h1>\n'
        "<p>One book, its details and its reviews, from four services in the mesh. "
        "Who sees which reviews is the mesh's routing: sign in as <b>jason</b> to try "
        "<code>virtual-service-reviews-jason-v2.yaml</code>.</p>\n<ul>\n"
        '<li><a href="/productpage?u=normal">Normal user</a></li>\n'
        '<li><a href="/productpage?u=test">Test user</a></li>\n</ul></div>'
    )
    return page_html(title="Bookinfo", content=content, user=user, served_by=served_by)


def page_html(*, title: object, content: str, user: str | None, served_by: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n"
        f'<header><a class="brand" href="/productpage">BookInfo Sample</a>{account_html(user)}'
        f"</header>\n<main>\n{content}\n</main>\n"
        f"<footer>served by {esc(served_by)}</footer>\n</body>\n</html>\n"
    )


def account_html(user: str | None) -> str:
    if user is not None:
        return (
            f'<span class="account">Signed in as <b id="user">{esc(user)}</b> '
            '<a href="/logout">Sign out</a></span>'
        )
    return (
        '<form class="account" method="post" action="/login">'
        '<input name="username" placeholder="user name" aria-label="user name" required> '
        "<button>Sign in</button></form>"
    )


def details_html(upstream: Mapping[str, Any]) -> str:
    if upstream.get("error") is not None:
        return error_html("details", upstream)
    book = as_mapping(upstream.get("body"))
    rows = "".join(
        f"<dt>{label}</dt><dd>{esc(book[key])}</dd>" for key, label in DETAIL_FIELDS if key in book
    )
    return f"<dl>{rows}</dl>"


def reviews_html(upstream: Mapping[str, Any]) -> str:
    if upstream.get("error") is not None:
        return error_html("reviews", upstream)
    body = as_mapping(upstream.get("body"))
    ratings_error = as_mapping(body.get("ratings")).get("error")
    given = body.get("reviews")
    items = [as_mapping(review) for review in (given if isinstance(given, list) else [])]
    served = f"{body.get('instance', '?')} ({body.get('version', '?')})"
    return (
        "".join(review_html(review, ratings_error=ratings_error) for review in items)
        + f'<p class="served">Reviews served by {esc(served)}</p>'
    )


def review_html(review: Mapping[str, Any], *, ratings_error: object) -> str:
    return (
        f'<blockquote class="review"><p>{esc(review.get("text", ""))}</p>'
        f"<footer>{esc(review.get('reviewer', ''))}</footer>"
        f"{rating_html(review, ratings_error=ratings_error)}</blockquote>"
    )


def rating_html(review: Mapping[str, Any], *, ratings_error: object) -> str:
    """Stars as reviews v2 (black) and v3 (red) give them; reviews v1 gives none."""
    if "stars" not in review:
        return ""
    stars = review["stars"]
    if isinstance(stars, bool) or not isinstance(stars, int) or not 0 <= stars <= MAX_STARS:
        cause = f": {ratings_error}" if ratings_error else ""
        return f'<p class="rating-error">Ratings unavailable{esc(cause)}</p>'
    # Only a known colour reaches the class name; anything else an upstream says is not CSS.
    color = review.get("color")
    color = color if color in STAR_COLORS.values() else "black"
    shapes = "".join(
        f'<svg viewBox="0 0 24 24" aria-hidden="true"><path d="{STAR_PATH}" '
        + ('fill="currentColor"' if n < stars else 'fill="none" stroke="currentColor"')
        + "/></svg>"
        for n in range(MAX_STARS)
    )
    return (
        f'<span class="stars stars-{color}" data-color="{color}" data-stars="{stars}" '
        f'role="img" aria-label="{stars} of {MAX_STARS} stars">{shapes}</span>'
    )


def error_html(name: str, upstream: Mapping[str, Any]) -> str:
    """What failed and why, with what the upstream said: Envoy's fault and timeout answers are
    text, the sample's own failures JSON with an `error`."""
    said = upstream.get("body")
    if isinstance(said, dict):
        said = said.get("error")
    return (
        f'<div class="error" role="alert" data-upstream="{esc(name)}">'
        f"<strong>Error fetching the book's {esc(name)}</strong>"
        f"<p>{UNAVAILABLE.get(name, '')}</p>"
        f'<p class="cause">{esc(upstream.get("error"))}</p>'
        + (f"<pre>{esc(said)}</pre>" if isinstance(said, str) and said.strip() else "")
        + "</div>"
    )


def signed_in_user(request: web.Request) -> str | None:
    """The user the cookie names; a name the login form would refuse counts as nobody."""
    name = request.cookies.get(USER_COOKIE)
    return name if name is not None and USER_NAME.fullmatch(name) else None


async def browser_page(request: web.Request, upstreams: Upstreams, product: int) -> web.Response:
    settings = request.app[SETTINGS]
    user = signed_in_user(request)
    served_by = f"productpage {settings.version} on {socket.gethostname()}"
    if request.path == "/":
        text = render_landing_page(user=user, served_by=served_by)
    else:
        page = await productpage(settings, upstreams, product)
        text = render_product_page(page, user=user, served_by=served_by)
    request.app[STATE].statuses[200] += 1
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


async def login(request: web.Request) -> web.Response:
    """Istio's bookinfo sign-in: no password, the name goes into a cookie."""
    form = await request.post()
    name = str(form.get("username", "")).strip()
    if not USER_NAME.fullmatch(name):
        return web.Response(
            status=400,
            text=f"login: {name[:80]!r} is not a user name; use 1 to 64 letters, digits, "
            "'.', '_', '-' or '@', like jason",
        )
    response = web.Response(status=303, headers={"Location": "/productpage"})
    response.set_cookie(USER_COOKIE, name, path="/", httponly=True, samesite="Lax")
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.Response(status=303, headers={"Location": "/productpage"})
    response.del_cookie(USER_COOKIE, path="/")
    return response


# --- HTTP endpoints ----------------------------------------------------------------------


async def serve(request: web.Request) -> web.Response:
    """The service's own work, after the delay and failure knobs have had their say."""
    settings, state = request.app[SETTINGS], request.app[STATE]
    state.paths[request.path] += 1
    state.last_headers = header_dict(request.headers)
    try:
        knobs = request_knobs(request.headers, service=settings.service, version=settings.version)
    except KnobError as exc:
        return reply(request, 400, {"error": str(exc)})
    # Decided on arrival, so concurrent requests fail in the order they came in.
    failure = knobs.fail_status if knobs.fail_status is not None else state.next_failure()
    delay = knobs.delay if knobs.delay is not None else state.knobs.delay
    if delay > 0:
        await asyncio.sleep(delay)
    if failure is not None:
        return reply(request, failure, {"error": "fault injected by a bookinfo knob"})
    front = settings.service == "productpage"
    user = signed_in_user(request) if front else None
    forward = {**propagated(request.headers, user=user), **knobs.forward}
    upstreams = Upstreams(session=request.app[SESSION], headers=forward)
    product = int(request.match_info.get("product", "0"))
    if front and wants_html(request.headers.get("accept", "")):
        response = await browser_page(request, upstreams, product)
    else:
        body = await HANDLERS[settings.service](settings, upstreams, product)
        response = reply(request, 200, body)
    if front:  # the same URL answers JSON or HTML: caches must keep them apart
        response.headers["Vary"] = "Accept"
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_control(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].knobs.to_json())


async def post_control(request: web.Request) -> web.Response:
    """Replace every knob at once (missing fields reset) and restart the failure pattern."""
    text = await request.text()
    try:
        # An empty body resets every knob: `curl -X POST host:9080/control`.
        knobs = Knobs.from_json(json.loads(text) if text.strip() else {})
    except json.JSONDecodeError:
        return web.json_response({"error": "control: the body is not JSON"}, status=400)
    except KnobError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    state = request.app[STATE]
    state.knobs, state.decided = knobs, 0
    log.info("knobs set: %s", knobs.to_json())
    return web.json_response(knobs.to_json())


async def get_stats(request: web.Request) -> web.Response:
    settings, state = request.app[SETTINGS], request.app[STATE]
    return web.json_response(
        {
            "service": settings.service,
            "version": settings.version,
            "requests": sum(state.paths.values()),
            "paths": dict(state.paths),
            "statuses": {str(code): n for code, n in sorted(state.statuses.items())},
            "last_headers": state.last_headers,
            "tcp_nodelay": tcp_nodelay(request),
        }
    )


async def delete_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.paths.clear()
    state.statuses.clear()
    state.last_headers = {}
    return web.json_response({"status": "reset"})


def tcp_nodelay(request: web.Request) -> bool | None:
    """Whether the connection this request came on has Nagle off (None: not a TCP socket)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


async def client_session(app: web.Application) -> AsyncIterator[None]:
    timeout = ClientTimeout(total=app[SETTINGS].upstream_timeout)
    async with ClientSession(timeout=timeout) as session:
        app[SESSION] = session
        yield


def build_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[STATE] = State()
    app.cleanup_ctx.append(client_session)
    app.router.add_get("/health", health)
    app.router.add_get("/control", get_control)
    app.router.add_post("/control", post_control)
    app.router.add_get("/stats", get_stats)
    app.router.add_delete("/stats", delete_stats)
    name = settings.service
    for path in ("/", f"/{name}", f"/{name}/{{product:\\d+}}"):
        app.router.add_route("*", path, serve)
    if name == "productpage":
        app.router.add_post("/login", login)
        app.router.add_get("/logout", logout)
    return app


# --- process -----------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, with Nagle off.

    Behind Envoy, Nagle's algorithm holds back a small write while earlier data is still
    unacknowledged; with the peer's delayed ACKs that costs ~40 ms a request. Linux copies
    TCP_NODELAY from the listening socket to accepted ones; asyncio and aiohttp also set it on
    every connection they make or accept (client side included); /stats shows what a
    connection really has.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def start(settings: Settings) -> tuple[web.AppRunner, str]:
    """Serve one service; return its runner (cleanup() stops it) and the URL it answers on."""
    sock = listen(settings.host, settings.port)
    runner = web.AppRunner(build_app(settings), shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{port}"


async def run(settings: Settings) -> None:
    runner, url = await start(settings)
    # Scripts read this line to learn the port when PORT=0.
    print(f"bookinfo {settings.service} {settings.version} listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def parse_settings(argv: Sequence[str] | None, env: Mapping[str, str]) -> Settings:
    """Flags win over environment variables; environment variables over defaults."""
    parser = argparse.ArgumentParser(description="Run one bookinfo-style sample service.")
    add = parser.add_argument
    add("--service", default=env.get("SERVICE"), help=f"env SERVICE: one of {', '.join(SERVICES)}")
    add("--version", default=env.get("VERSION", "v1"), help="env VERSION: v1, v2 or v3")
    add("--host", default=env.get("HOST", "0.0.0.0"), help="env HOST; default 0.0.0.0")
    add("--port", type=int, default=env.get("PORT", "9080"), help="env PORT; 0 picks one")
    for name in ("details", "reviews", "ratings"):
        variable = f"{name.upper()}_URL"
        default = env.get(variable, f"http://{name}:9080")
        add(f"--{name}-url", default=default, help=f"env {variable}; default {default}")
    add(
        "--upstream-timeout",
        default=env.get("UPSTREAM_TIMEOUT", "10s"),
        help="env UPSTREAM_TIMEOUT",
    )
    args = parser.parse_args(argv)
    if args.service not in SERVICES:
        parser.error(f"SERVICE {args.service!r} is not one of {', '.join(SERVICES)}")
    if args.version not in VERSIONS:
        parser.error(f"VERSION {args.version!r} is not one of {', '.join(VERSIONS)}")
    try:
        upstream_timeout = parse_duration(args.upstream_timeout, where="UPSTREAM_TIMEOUT")
    except KnobError as exc:
        parser.error(str(exc))
    return Settings(
        service=args.service,
        version=args.version,
        host=args.host,
        port=args.port,
        details_url=args.details_url.rstrip("/"),
        reviews_url=args.reviews_url.rstrip("/"),
        ratings_url=args.ratings_url.rstrip("/"),
        upstream_timeout=upstream_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
