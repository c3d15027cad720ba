"""The bookinfo-style sample, run for real: each service on its own loopback port, calling the
others over HTTP by URL exactly as it does in the mesh, minus the sidecars.

Timings are only ever lower bounds here (a delay knob cannot answer early); how fast things
are is for benchmarks.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from aiohttp import web

# Not part of the distribution (it runs in its own image); pytest puts the repository root on
# sys.path because tests/ is a package, and mypy finds it through mypy_path = ".".
from samples.bookinfo.app import bookinfo

SAMPLE = Path(bookinfo.__file__).resolve().parents[1]
NETWORKING = SAMPLE / "networking"
KUBE_MANIFEST = SAMPLE / "platform" / "kube" / "bookinfo.yaml"


# --- a bookinfo on loopback ----------------------------------------------------------------


@dataclass
class Bookinfo:
    """Every service and version, plus one productpage in front of each reviews version
    (outside the mesh nothing picks a version, so each productpage is wired to one)."""

    urls: dict[str, str] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)

    def page(self, reviews: str) -> str:
        return f"{self.urls[f'productpage>reviews-{reviews}']}/productpage"

    async def start(self, name: str, service: str, version: str = "v1", **upstreams: str) -> str:
        settings = bookinfo.Settings(
            service=service,
            version=version,
            host="127.0.0.1",
            port=0,
            details_url=upstreams.get("details", "http://details.invalid"),
            reviews_url=upstreams.get("reviews", "http://reviews.invalid"),
            ratings_url=upstreams.get("ratings", "http://ratings.invalid"),
            upstream_timeout=5.0,
        )
        runner, url = await bookinfo.start(settings)
        self.runners.append(runner)
        self.urls[name] = url
        return url


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback port that is reserved but refuses every connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connects get a reset
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def mesh(dead_url: str) -> AsyncIterator[Bookinfo]:
    app = Bookinfo()
    try:
        ratings = await app.start("ratings-v1", "ratings")
        details = await app.start("details-v1", "details")
        for version in bookinfo.VERSIONS:
            reviews = await app.start(f"reviews-{version}", "reviews", version, ratings=ratings)
            name = f"productpage>reviews-{version}"
            await app.start(name, "productpage", details=details, reviews=reviews)
        await app.start("productpage>nothing", "productpage", details=dead_url, reviews=dead_url)
        yield app
    finally:
        for runner in app.runners:
            await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    # Plain HTTP on loopback: verify=False only skips loading a CA bundle (~50 ms a client).
    async with httpx2.AsyncClient(timeout=5.0, trust_env=False, verify=False) as http:
        yield http


async def control(client: httpx2.AsyncClient, url: str, **knobs: object) -> None:
    response = await client.post(f"{url}/control", json=knobs)
    assert response.status_code == 200, response.text


async def statuses(client: httpx2.AsyncClient, url: str, count: int) -> list[int]:
    return [(await client.get(url)).status_code for _ in range(count)]


async def stats(client: httpx2.AsyncClient, url: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"{url}/stats")).json()
    return body


# --- what each service answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "service", "version"),
    [
        ("ratings-v1", "ratings", "v1"),
        ("details-v1", "details", "v1"),
        ("reviews-v1", "reviews", "v1"),
        ("reviews-v2", "reviews", "v2"),
        ("reviews-v3", "reviews", "v3"),
        ("productpage>reviews-v1", "productpage", "v1"),
    ],
)
async def test_every_service_answers_with_its_name_and_version(
    mesh: Bookinfo, client: httpx2.AsyncClient, name: str, service: str, version: str
) -> None:
    for path in ("/", f"/{service}", f"/{service}/0"):
        response = await client.get(f"{mesh.urls[name]}{path}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert (body["service"], body["version"], body["path"]) == (service, version, path)


async def test_productpage_shows_details_and_plain_reviews_from_reviews_v1(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    page = (await client.get(mesh.page("v1"))).json()

    details, reviews = page["details"], page["reviews"]
    assert (details["status"], details["error"]) == (200, None)
    assert details["body"]["service"] == "details"
    assert details["body"]["title"] == "The Tempest"
    assert (reviews["status"], reviews["body"]["version"]) == (200, "v1")
    assert reviews["body"]["ratings"] is None
    assert all("stars" not in review for review in reviews["body"]["reviews"])
    assert (await stats(client, mesh.urls["ratings-v1"]))["requests"] == 0


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
async def test_reviews_v2_and_v3_show_stars_from_ratings_in_their_color(
    mesh: Bookinfo, client: httpx2.AsyncClient, version: str, color: str
) -> None:
    reviews = (await client.get(mesh.page(version))).json()["reviews"]["body"]

    assert reviews["version"] == version
    assert reviews["ratings"]["body"]["service"] == "ratings"
    assert [(r["stars"], r["color"]) for r in reviews["reviews"]] == [(5, color), (4, color)]


async def test_user_and_trace_headers_reach_ratings_through_every_hop(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    sent = {name: f"value-of-{name}" for name in bookinfo.PROPAGATED_HEADERS}
    sent["end-user"] = "jason"
    page = (await client.get(mesh.page("v2"), headers={**sent, "x-not-forwarded": "1"})).json()

    at_reviews = page["reviews"]["body"]["headers"]
    at_ratings = page["reviews"]["body"]["ratings"]["body"]["headers"]
    for headers in (page["details"]["body"]["headers"], at_reviews, at_ratings):
        assert {name: headers.get(name) for name in sent} == sent
        assert "x-not-forwarded" not in headers
    last = (await stats(client, mesh.urls["ratings-v1"]))["last_headers"]
    assert (last["end-user"], last["x-request-id"]) == ("jason", "value-of-x-request-id")


# --- knobs ---------------------------------------------------------------------------------


async def test_half_503_fails_exactly_every_other_request(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    ratings = mesh.urls["ratings-v1"]
    await control(client, ratings, fail_status=503, fail_ratio=0.5)

    assert await statuses(client, ratings, 6) == [503, 200] * 3
    assert (await stats(client, ratings))["statuses"] == {"200": 3, "503": 3}


async def test_failure_ratio_spreads_failures_evenly_starting_with_the_first(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    details = mesh.urls["details-v1"]
    await control(client, details, fail_status=500, fail_ratio=0.25)

    assert await statuses(client, details, 8) == [500, 200, 200, 200] * 2


async def test_setting_knobs_restarts_the_failure_pattern(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    ratings = mesh.urls["ratings-v1"]
    await control(client, ratings, fail_status=503, fail_ratio=0.5)
    assert await statuses(client, ratings, 3) == [503, 200, 503]

    await control(client, ratings, fail_status=503, fail_ratio=0.5)

    assert await statuses(client, ratings, 2) == [503, 200]


async def test_a_header_knob_wins_and_leaves_the_failure_pattern_alone(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    ratings = mesh.urls["ratings-v1"]
    await control(client, ratings, fail_status=503, fail_ratio=0.5)

    forced = await client.get(ratings, headers={"x-bookinfo-fail": "500"})

    assert forced.status_code == 500
    assert await statuses(client, ratings, 2) == [503, 200]


async def test_a_status_alone_fails_every_request_and_an_empty_post_resets(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    details = mesh.urls["details-v1"]
    await control(client, details, fail_status=429)
    assert (await client.get(f"{details}/control")).json() == {
        "delay": "0s",
        "fail_status": 429,
        "fail_ratio": 1.0,
    }
    assert await statuses(client, details, 3) == [429] * 3

    assert (await client.post(f"{details}/control")).status_code == 200

    assert await statuses(client, details, 3) == [200] * 3


async def test_runtime_delay_holds_every_response(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    details = mesh.urls["details-v1"]
    await control(client, details, delay="200ms")
    assert (await client.get(f"{details}/control")).json()["delay"] == "0.2s"

    started = time.monotonic()
    response = await client.get(details)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_delay_header_delays_the_service_that_receives_it_and_goes_no_further(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    started = time.monotonic()
    page = (await client.get(mesh.page("v2"), headers={"x-bookinfo-delay": "200ms"})).json()

    assert time.monotonic() - started >= 0.2
    assert "x-bookinfo-delay" not in page["details"]["body"]["headers"]
    assert "x-bookinfo-delay" not in page["reviews"]["body"]["headers"]


async def test_untargeted_fail_header_fails_the_receiver_before_it_calls_upstreams(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    response = await client.get(mesh.page("v2"), headers={"x-bookinfo-fail": "503"})

    assert response.status_code == 503
    assert response.json()["service"] == "productpage"
    assert (await stats(client, mesh.urls["details-v1"]))["requests"] == 0
    assert (await stats(client, mesh.urls["reviews-v2"]))["requests"] == 0


async def test_targeted_fail_header_travels_to_its_target_and_fails_only_there(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    knobs = {"x-bookinfo-target": "ratings", "x-bookinfo-fail": "503"}
    response = await client.get(mesh.page("v2"), headers=knobs)

    assert response.status_code == 200
    reviews = response.json()["reviews"]
    assert reviews["status"] == 200
    ratings = reviews["body"]["ratings"]
    assert (ratings["status"], ratings["error"]) == (503, "ratings unavailable: HTTP 503")
    assert [review["stars"] for review in reviews["body"]["reviews"]] == [None, None]
    assert (await stats(client, mesh.urls["ratings-v1"]))["statuses"] == {"503": 1}


async def test_a_target_can_name_one_version_of_a_service(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    knobs = {"x-bookinfo-target": "reviews-v3", "x-bookinfo-fail": "503"}

    v2 = (await client.get(mesh.page("v2"), headers=knobs)).json()
    v3 = (await client.get(mesh.page("v3"), headers=knobs)).json()

    assert v2["reviews"]["status"] == 200
    assert v2["reviews"]["body"]["ratings"]["status"] == 200  # ratings is not the target either
    assert v3["reviews"]["status"] == 503


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"fail_ratio": 2}, "use a number from 0 to 1"),
        ({"fail_ratio": True}, "use a number from 0 to 1"),
        ({"fail_status": 200}, "use 400 to 599"),
        ({"delay": 2}, "like 500ms or 2s"),
        ({"delay": "2 seconds"}, "like 500ms or 2s"),
        ({"fail_rate": 0.5}, "unknown field(s) ['fail_rate']"),
        ([503], "must be a JSON object"),
    ],
)
async def test_bad_knobs_are_refused_with_what_is_accepted(
    mesh: Bookinfo, client: httpx2.AsyncClient, body: object, complaint: str
) -> None:
    ratings = mesh.urls["ratings-v1"]
    await control(client, ratings, delay="1ms")

    response = await client.post(f"{ratings}/control", json=body)

    assert response.status_code == 400
    assert complaint in response.json()["error"]
    assert (await client.get(f"{ratings}/control")).json()["delay"] == "0.001s"


async def test_bad_knob_headers_are_refused_with_what_is_accepted(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    ratings = mesh.urls["ratings-v1"]

    delay = await client.get(ratings, headers={"x-bookinfo-delay": "2"})
    fail = await client.get(ratings, headers={"x-bookinfo-fail": "ok"})

    assert delay.status_code == fail.status_code == 400
    assert "x-bookinfo-delay: '2' is not a duration" in delay.json()["error"]
    assert "x-bookinfo-fail: 'ok' is not an HTTP error status" in fail.json()["error"]


# --- graceful degradation ------------------------------------------------------------------


async def test_productpage_still_answers_when_reviews_fails(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    await control(client, mesh.urls["reviews-v1"], fail_status=503)

    response = await client.get(mesh.page("v1"))

    assert response.status_code == 200
    page = response.json()
    assert (page["details"]["status"], page["details"]["error"]) == (200, None)
    assert page["reviews"]["status"] == 503
    assert page["reviews"]["error"] == "reviews unavailable: HTTP 503"


async def test_productpage_still_answers_when_its_upstreams_are_unreachable(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    response = await client.get(f"{mesh.urls['productpage>nothing']}/productpage")

    assert response.status_code == 200
    for name in ("details", "reviews"):
        upstream = response.json()[name]
        assert (upstream["status"], upstream["body"]) == (None, None)
        assert upstream["error"].startswith(f"{name} unavailable: ")


async def test_reviews_shows_stars_only_when_flaky_ratings_answers(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    await control(client, mesh.urls["ratings-v1"], fail_status=503, fail_ratio=0.5)

    pages = [(await client.get(mesh.page("v3"))).json() for _ in range(2)]

    stars = [[r["stars"] for r in page["reviews"]["body"]["reviews"]] for page in pages]
    assert stars == [[None, None], [5, 4]]
    assert [page["reviews"]["status"] for page in pages] == [200, 200]


# --- operating the services ----------------------------------------------------------------


async def test_stats_count_requests_per_path_and_reset_on_delete(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    ratings = mesh.urls["ratings-v1"]
    for path in ("/ratings/0", "/ratings/0", "/ratings/7", "/health", "/control"):
        await client.get(f"{ratings}{path}")

    counted = await stats(client, ratings)
    assert counted["requests"] == 3
    assert counted["paths"] == {"/ratings/0": 2, "/ratings/7": 1}

    await client.delete(f"{ratings}/stats")

    assert (await stats(client, ratings))["paths"] == {}


async def test_health_answers_ok_even_while_faults_are_injected(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    details = mesh.urls["details-v1"]
    await control(client, details, fail_status=503, delay="10s")

    response = await client.get(f"{details}/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_server_connections_have_nagle_off(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    assert (await stats(client, mesh.urls["reviews-v2"]))["tcp_nodelay"] is True
    with bookinfo.listen("127.0.0.1", 0) as listener:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_program_takes_its_service_from_env_and_stops_cleanly_on_sigterm(
    mesh: Bookinfo, client: httpx2.AsyncClient
) -> None:
    env = {
        "SERVICE": "reviews",
        "VERSION": "v3",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "RATINGS_URL": mesh.urls["ratings-v1"],
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, bookinfo.__file__, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        assert line.startswith("bookinfo reviews v3 listening on http://127.0.0.1:")
        url = line.split()[-1]

        reviews = (await client.get(f"{url}/reviews/0")).json()

        assert (reviews["service"], reviews["version"]) == ("reviews", "v3")
        assert [r["stars"] for r in reviews["reviews"]] == [5, 4]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=10) == 0


def test_flags_win_over_env_and_upstreams_default_to_service_names() -> None:
    settings = bookinfo.parse_settings(
        ["--version", "v2"], {"SERVICE": "reviews", "VERSION": "v3", "UPSTREAM_TIMEOUT": "3s"}
    )

    assert (settings.service, settings.version, settings.port) == ("reviews", "v2", 9080)
    assert settings.ratings_url == "http://ratings:9080"
    assert settings.upstream_timeout == 3.0


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "SERVICE None is not one of productpage, details, reviews, ratings"),
        ({"SERVICE": "shipping"}, "SERVICE 'shipping' is not one of"),
        ({"SERVICE": "reviews", "VERSION": "v4"}, "VERSION 'v4' is not one of v1, v2, v3"),
        ({"SERVICE": "reviews", "UPSTREAM_TIMEOUT": "3"}, "UPSTREAM_TIMEOUT: '3'"),
    ],
)
def test_a_bad_service_choice_is_refused_at_startup(
    env: dict[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        bookinfo.parse_settings([], env)

    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


# --- manifests and routing YAML ------------------------------------------------------------


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kinds_and_names(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(doc["kind"], doc["metadata"]["name"]) for doc in docs]


def test_kube_manifest_declares_a_service_account_and_versioned_deployments_per_service() -> None:
    docs = load(KUBE_MANIFEST)
    by_kind: dict[str, list[str]] = {}
    for kind, name in kinds_and_names(docs):
        by_kind.setdefault(kind, []).append(name)

    services = ["details", "ratings", "reviews", "productpage"]
    assert by_kind["Service"] == services
    assert by_kind["ServiceAccount"] == [f"bookinfo-{name}" for name in services]
    assert by_kind["Deployment"] == [
        "details-v1",
        "ratings-v1",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
        "productpage-v1",
    ]
    for service in (doc for doc in docs if doc["kind"] == "Service"):
        assert service["spec"]["ports"] == [{"name": "http", "port": 9080, "targetPort": 9080}]
        assert service["spec"]["selector"] == {"app": service["metadata"]["name"]}


def test_each_deployment_runs_the_service_and_version_its_labels_name() -> None:
    for deployment in (doc for doc in load(KUBE_MANIFEST) if doc["kind"] == "Deployment"):
        app, version = deployment["metadata"]["name"].rsplit("-", 1)
        labels = {"app": app, "version": version}
        spec = deployment["spec"]
        assert deployment["metadata"]["labels"] == labels
        assert spec["selector"]["matchLabels"] == labels
        assert spec["template"]["metadata"]["labels"] == labels
        assert spec["template"]["spec"]["serviceAccountName"] == f"bookinfo-{app}"
        [container] = spec["template"]["spec"]["containers"]
        assert container["image"] == "istiolite/bookinfo:latest"
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env == {"SERVICE": app, "VERSION": version}
        assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 9080}


DR, VS = "DestinationRule", "VirtualService"
ALL_SERVICES = ["productpage", "details", "reviews", "ratings"]
ROUTING_FILES = {
    "destination-rule-all.yaml": [(DR, name) for name in ALL_SERVICES],
    "virtual-service-all-v1.yaml": [(VS, name) for name in ALL_SERVICES],
    "virtual-service-reviews-jason-v2.yaml": [(VS, "reviews")],
    "virtual-service-reviews-80-20.yaml": [(VS, "reviews")],
    "virtual-service-reviews-50-50.yaml": [(VS, "reviews")],
    "virtual-service-reviews-timeout.yaml": [(VS, "reviews")],
    "virtual-service-ratings-retries.yaml": [(VS, "ratings")],
    "virtual-service-ratings-fault-delay.yaml": [(VS, "ratings")],
    "virtual-service-ratings-fault-abort.yaml": [(VS, "ratings")],
    # Istio's names for the same kinds of routing
    "destination-rule-reviews.yaml": [(DR, "reviews")],
    "virtual-service-reviews-v3.yaml": [(VS, "reviews")],
    "virtual-service-reviews-90-10.yaml": [(VS, "reviews")],
    "virtual-service-reviews-50-v3.yaml": [(VS, "reviews")],
    "virtual-service-reviews-v2-v3.yaml": [(VS, "reviews")],
    "virtual-service-reviews-test-v2.yaml": [(VS, "reviews")],
    "virtual-service-reviews-jason-v2-v3.yaml": [(VS, "reviews")],
}


# The way in from outside, as Istio's file of that name: a Gateway and the VirtualService bound
# to it (analyzed with the sample in tests/api/test_analyze.py).
GATEWAY_FILES = {"bookinfo-gateway.yaml": [("Gateway", "bookinfo-gateway"), (VS, "bookinfo")]}


def routing(name: str) -> list[dict[str, Any]]:
    return load(NETWORKING / name)


def test_routing_directory_holds_exactly_the_known_files() -> None:
    known = [*ROUTING_FILES, *GATEWAY_FILES]
    assert sorted(path.name for path in NETWORKING.iterdir()) == sorted(known)


def test_the_gateway_file_lets_the_sample_in_through_the_installed_gateway() -> None:
    [gateway, bound] = routing("bookinfo-gateway.yaml")
    assert kinds_and_names([gateway, bound]) == GATEWAY_FILES["bookinfo-gateway.yaml"]
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    [server] = gateway["spec"]["servers"]
    assert server["port"] == {"number": 8080, "name": "http", "protocol": "HTTP"}
    assert bound["spec"]["gateways"] == ["bookinfo-gateway"]
    assert bound["spec"]["hosts"] == ["*"]
    [route] = bound["spec"]["http"]
    assert {"uri": {"exact": "/productpage"}} in route["match"]
    assert route["route"] == [{"destination": {"host": "productpage", "port": {"number": 9080}}}]


@pytest.mark.parametrize(("name", "expected"), ROUTING_FILES.items())
def test_routing_file_holds_the_expected_istio_resources(
    name: str, expected: list[tuple[str, str]]
) -> None:
    docs = routing(name)

    assert kinds_and_names(docs) == expected
    for doc in docs:
        assert doc["apiVersion"] == "networking.istio.io/v1"
        host = doc["metadata"]["name"]
        hosts = [doc["spec"]["host"]] if doc["kind"] == DR else doc["spec"]["hosts"]
        assert hosts == [host]


def destinations(virtual_service: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for http in virtual_service["spec"]["http"]:
        for route in http["route"]:
            yield route["destination"]


def test_routes_name_only_subsets_the_destination_rules_define() -> None:
    subsets = {
        (rule["spec"]["host"], subset["name"])
        for rule in routing("destination-rule-all.yaml")
        for subset in rule["spec"]["subsets"]
    }
    routed = {
        (destination["host"], destination["subset"])
        for name in ROUTING_FILES
        for doc in routing(name)
        if doc["kind"] == VS
        for destination in destinations(doc)
    }

    assert routed <= subsets
    assert ("reviews", "v3") in routed


def walk_keys(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_keys(item)


@pytest.mark.parametrize("name", ROUTING_FILES)
def test_routing_file_avoids_deprecated_and_unsupported_fields(name: str) -> None:
    unwanted = {"percent", "mirror_percent", "mirrorPercent", "tls", "exportTo", "gateways"}
    for doc in routing(name):
        assert unwanted.isdisjoint(walk_keys(doc)), doc["metadata"]["name"]
        for http in doc["spec"].get("http", []):
            weights = [route.get("weight", 100) for route in http["route"]]
            assert sum(weights) == 100 or weights == [100]


def http_routes(name: str) -> list[dict[str, Any]]:
    [virtual_service] = routing(name)
    routes: list[dict[str, Any]] = virtual_service["spec"]["http"]
    return routes


def test_scenario_files_say_what_their_names_promise() -> None:
    jason = [{"headers": {"end-user": {"exact": "jason"}}}]
    to_v1 = [{"destination": {"host": "ratings", "subset": "v1"}}]

    jason_v2, others = http_routes("virtual-service-reviews-jason-v2.yaml")
    assert jason_v2["match"] == jason
    assert jason_v2["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]
    assert "match" not in others

    split = http_routes("virtual-service-reviews-80-20.yaml")[0]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in split] == [("v1", 80), ("v2", 20)]
    split = http_routes("virtual-service-reviews-50-50.yaml")[0]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in split] == [("v1", 50), ("v3", 50)]
    for name, weights in [
        ("virtual-service-reviews-50-v3.yaml", [("v1", 50), ("v3", 50)]),
        ("virtual-service-reviews-90-10.yaml", [("v1", 90), ("v2", 10)]),
        ("virtual-service-reviews-v2-v3.yaml", [("v2", 50), ("v3", 50)]),
    ]:
        split = http_routes(name)[0]["route"]
        assert [(r["destination"]["subset"], r["weight"]) for r in split] == weights, name
    [all_v3] = http_routes("virtual-service-reviews-v3.yaml")
    assert all_v3["route"] == [{"destination": {"host": "reviews", "subset": "v3"}}]
    for name, everyone_else in [
        ("virtual-service-reviews-test-v2.yaml", "v1"),
        ("virtual-service-reviews-jason-v2-v3.yaml", "v3"),
    ]:
        jason_route, rest = http_routes(name)
        assert jason_route["match"] == jason, name
        assert jason_route["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]
        assert rest["route"] == [{"destination": {"host": "reviews", "subset": everyone_else}}], (
            name
        )
    [random] = routing("destination-rule-reviews.yaml")
    assert random["spec"]["trafficPolicy"] == {"loadBalancer": {"simple": "RANDOM"}}

    [timeout] = http_routes("virtual-service-reviews-timeout.yaml")
    assert timeout["timeout"] == "0.5s"
    [retries] = http_routes("virtual-service-ratings-retries.yaml")
    assert retries["retries"]["attempts"] == 5
    assert {"perTryTimeout", "retryOn"} <= set(retries["retries"])

    delayed, undelayed = http_routes("virtual-service-ratings-fault-delay.yaml")
    assert (delayed["match"], delayed["route"], undelayed["route"]) == (jason, to_v1, to_v1)
    assert delayed["fault"] == {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
    aborted, unaborted = http_routes("virtual-service-ratings-fault-abort.yaml")
    assert (aborted["match"], aborted["route"], unaborted["route"]) == (jason, to_v1, to_v1)
    assert aborted["fault"] == {"abort": {"httpStatus": 500, "percentage": {"value": 100.0}}}
