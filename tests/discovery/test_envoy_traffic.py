"""Routing behaviour through a real Envoy configured by the real pilot-discovery.

Everything runs in one network namespace made by the test: pilot-discovery, an Envoy with the
sidecar's outbound capture (iptables REDIRECT of service addresses to 15001), and bookinfo's
reviews v1/v2/v3 and ratings as upstreams on loopback addresses. The client calls services
by their cluster IP and Host header, as an app in a pod would. Statistical checks use at
least 1,000 requests.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from istiolite.testing import netns
from istiolite.testing.mesh import Discovery, Envoy, workdir
from istiolite.testing.netns import NetNamespace
from istiolite.testing.wait import eventually

pytestmark = [pytest.mark.envoy, pytest.mark.netns]

REVIEWS_VIP, RATINGS_VIP = "10.96.0.11", "10.96.0.12"
APP = Path(__file__).parents[2] / "samples" / "bookinfo" / "app" / "bookinfo.py"
UPSTREAMS = {  # name: (service, version, address)
    "reviews-v1": ("reviews", "v1", "127.0.0.11"),
    "reviews-v2": ("reviews", "v2", "127.0.0.12"),
    "reviews-v3": ("reviews", "v3", "127.0.0.13"),
    "ratings-v1": ("ratings", "v1", "127.0.0.21"),
}

MESH = f"""
apiVersion: v1
kind: Service
metadata: {{name: reviews}}
spec:
  clusterIP: {REVIEWS_VIP}
  selector: {{app: reviews}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: ratings}}
spec:
  clusterIP: {RATINGS_VIP}
  selector: {{app: ratings}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
""" + "".join(
    f"""---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}}}
spec: {{address: {address}, labels: {{app: {service}, version: {version}}}}}
"""
    for name, (service, version, address) in UPSTREAMS.items()
)


@dataclass(frozen=True)
class Reply:
    status: int
    version: str | None
    seconds: float


@dataclass
class Mesh:
    ns: NetNamespace
    config_dir: Path
    discovery: Discovery
    envoy: Envoy

    def route(self, name: str, yaml_text: str) -> None:
        """Replace the routing config and wait until Envoy serves the route named `name`."""
        (self.config_dir / "routing.yaml").write_text(yaml_text)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if (
                f'"name": "{name}"'
                in self.envoy.admin("/config_dump?resource=dynamic_route_configs").text
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"Envoy never received route {name!r}")

    def knobs(self, address: str, **knobs: object) -> None:
        def post() -> None:
            conn = http.client.HTTPConnection(address, 9080, timeout=5)
            conn.request(
                "POST",
                "/control",
                body=json.dumps(knobs),
                headers={"content-type": "application/json"},
            )
            assert conn.getresponse().status == 200
            conn.close()

        self.ns.run(post)

    def call(
        self, vip: str, host: str, n: int, headers: dict[str, str] | None = None
    ) -> list[Reply]:
        """n sequential requests over one keep-alive connection, from inside the namespace."""

        def send() -> list[Reply]:
            replies = []
            conn = http.client.HTTPConnection(vip, 9080, timeout=10)
            for _ in range(n):
                started = time.perf_counter()
                conn.request("GET", f"/{host}/1", headers={"host": host, **(headers or {})})
                response = conn.getresponse()
                body = response.read()
                version = None
                if response.status == 200:
                    version = json.loads(body).get("version")
                replies.append(Reply(response.status, version, time.perf_counter() - started))
                if response.getheader("connection") == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(vip, 9080, timeout=10)
            conn.close()
            return replies

        return self.ns.run(send)


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    with workdir() as work, NetNamespace() as ns:
        # Service addresses route to loopback, and the sidecar's capture sends them to Envoy.
        ns.sh("ip", "route", "add", "10.96.0.0/16", "dev", "lo", "src", "127.0.0.1")
        ns.sh("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.96.0.0/16",
              "-j", "REDIRECT", "--to-ports", "15001")  # fmt: skip
        apps = []
        for service, version, address in UPSTREAMS.values():
            with (work / f"{service}-{version}.log").open("wb") as log:
                apps.append(
                    subprocess.Popen(
                        [
                            "ip",
                            "netns",
                            "exec",
                            ns.name,
                            sys.executable,
                            str(APP),
                            f"--service={service}",
                            f"--version={version}",
                            f"--host={address}",
                            "--port=9080",
                            f"--ratings-url=http://{RATINGS_VIP}:9080",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        config = work / "config"
        config.mkdir()
        (config / "mesh.yaml").write_text(MESH)
        discovery = Discovery(config, work, ns=ns).start()
        envoy = Envoy(
            discovery.address, work, name="client", ip="10.1.0.5", labels={"app": "client"}, ns=ns
        )
        envoy.start()
        try:
            envoy.wait_live()
            for _, _, address in UPSTREAMS.values():
                _wait_http(ns, address)
            yield Mesh(ns, config, discovery, envoy)
        finally:
            envoy.stop()
            discovery.stop()
            for app in apps:
                app.kill()
                app.wait()


def _wait_http(ns: NetNamespace, address: str) -> None:
    def ok() -> bool:
        conn = http.client.HTTPConnection(address, 9080, timeout=1)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ns.run(ok):
            return
        time.sleep(0.1)
    raise TimeoutError(f"upstream {address} did not come up")


def reviews_vs(http_routes: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
        "spec:\n  hosts: [reviews]\n  http:\n" + http_routes
    )


def ratings_vs(http_routes: str) -> str:
    return (
        reviews_vs(http_routes)
        .replace("name: reviews}", "name: ratings}")
        .replace("[reviews]", "[ratings]")
    )


def test_header_match_sends_every_request_to_its_subset(mesh: Mesh) -> None:
    mesh.route(
        "jason",
        reviews_vs(
            "  - name: jason\n    match: [{headers: {end-user: {exact: jason}}}]\n"
            "    route: [{destination: {host: reviews, subset: v2}}]\n"
            "  - name: rest\n    route: [{destination: {host: reviews, subset: v1}}]\n"
        ),
    )
    jason = mesh.call(REVIEWS_VIP, "reviews", 1000, {"end-user": "jason"})
    others = mesh.call(REVIEWS_VIP, "reviews", 200, {"end-user": "maria"})
    assert Counter(r.version for r in jason) == {"v2": 1000}
    assert Counter(r.version for r in others) == {"v1": 200}


def test_weights_split_80_20_within_5_points(mesh: Mesh) -> None:
    mesh.route(
        "canary",
        reviews_vs(
            "  - name: canary\n    route:\n"
            "    - {destination: {host: reviews, subset: v1}, weight: 80}\n"
            "    - {destination: {host: reviews, subset: v3}, weight: 20}\n"
        ),
    )
    versions = Counter(r.version for r in mesh.call(REVIEWS_VIP, "reviews", 1000))
    assert set(versions) == {"v1", "v3"}
    assert abs(versions["v1"] / 1000 - 0.80) <= 0.05, versions
    assert abs(versions["v3"] / 1000 - 0.20) <= 0.05, versions


@pytest.fixture
def flaky_ratings(mesh: Mesh) -> Iterator[None]:
    mesh.knobs(UPSTREAMS["ratings-v1"][2], fail_status=503, fail_ratio=0.5)
    yield
    mesh.knobs(UPSTREAMS["ratings-v1"][2])


def test_retries_mask_an_upstream_failing_half_the_time(mesh: Mesh, flaky_ratings: None) -> None:
    mesh.route("retry5", ratings_vs(
        "  - name: retry5\n    route: [{destination: {host: ratings}}]\n"
        "    retries: {attempts: 5, perTryTimeout: 1s, retryOn: '5xx,connect-failure'}\n"
    ))  # fmt: skip
    replies = mesh.call(RATINGS_VIP, "ratings", 1000)
    success = sum(r.status == 200 for r in replies) / len(replies)
    assert success >= 0.97, Counter(r.status for r in replies)


def test_without_retries_half_the_requests_fail(mesh: Mesh, flaky_ratings: None) -> None:
    mesh.route("noretry", ratings_vs(
        "  - name: noretry\n    route: [{destination: {host: ratings}}]\n"
        "    retries: {attempts: 0}\n"
    ))  # fmt: skip
    replies = mesh.call(RATINGS_VIP, "ratings", 1000)
    statuses = Counter(r.status for r in replies)
    assert statuses[200] / 1000 <= 0.60, statuses
    assert set(statuses) == {200, 503}


def test_without_a_retry_policy_istios_default_retries_each_503(
    mesh: Mesh, flaky_ratings: None
) -> None:
    """The default policy sits on the virtual host; a route that names none inherits it."""
    mesh.route("default-retries", ratings_vs(
        "  - name: default-retries\n    route: [{destination: {host: ratings}}]\n"
    ))  # fmt: skip
    replies = mesh.call(RATINGS_VIP, "ratings", 1000)
    # Every other request fails (the sample spreads failures by a counter): one retry each.
    assert Counter(r.status for r in replies) == {200: 1000}


def test_route_timeout_answers_504_before_a_slow_upstream(mesh: Mesh) -> None:
    mesh.knobs(UPSTREAMS["ratings-v1"][2], delay="2s")
    try:
        mesh.route("timeout", ratings_vs(
            "  - name: timeout\n    route: [{destination: {host: ratings}}]\n    timeout: 0.5s\n"
            "    retries: {attempts: 0}\n"
        ))  # fmt: skip
        [reply] = mesh.call(RATINGS_VIP, "ratings", 1)
        assert reply.status == 504
        assert 0.45 <= reply.seconds < 1.0, reply.seconds  # Envoy's timer may fire a little early
    finally:
        mesh.knobs(UPSTREAMS["ratings-v1"][2])


def test_fault_abort_answers_the_configured_status(mesh: Mesh) -> None:
    mesh.route("abort", ratings_vs(
        "  - name: abort\n    route: [{destination: {host: ratings}}]\n"
        "    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n"
    ))  # fmt: skip
    assert Counter(r.status for r in mesh.call(RATINGS_VIP, "ratings", 100)) == {418: 100}


def test_fault_abort_percentage_is_honoured(mesh: Mesh) -> None:
    mesh.route("abort-half", ratings_vs(
        "  - name: abort-half\n    route: [{destination: {host: ratings}}]\n"
        "    fault: {abort: {httpStatus: 500, percentage: {value: 50}}}\n"
        "    retries: {attempts: 0}\n"
    ))  # fmt: skip
    statuses = Counter(r.status for r in mesh.call(RATINGS_VIP, "ratings", 1000))
    assert abs(statuses[500] / 1000 - 0.5) <= 0.05, statuses


def test_fault_delay_adds_the_configured_delay(mesh: Mesh) -> None:
    mesh.route(
        "plain", ratings_vs("  - name: plain\n    route: [{destination: {host: ratings}}]\n")
    )
    baseline = sorted(r.seconds for r in mesh.call(RATINGS_VIP, "ratings", 20))[10]
    mesh.route("delay", ratings_vs(
        "  - name: delay\n    route: [{destination: {host: ratings}}]\n"
        "    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}\n"
    ))  # fmt: skip
    delayed = mesh.call(RATINGS_VIP, "ratings", 10)
    assert all(r.status == 200 for r in delayed)
    # Envoy's timer may fire a millisecond early against our clock; the median carries the delay.
    median = sorted(r.seconds for r in delayed)[5]
    assert min(r.seconds for r in delayed) >= 0.29, [r.seconds for r in delayed]
    assert 0.295 <= median < 0.3 + baseline + 0.2, median


def _has_cluster(mesh: Mesh, host: str) -> bool:
    dump = mesh.envoy.admin("/config_dump?resource=dynamic_active_clusters").text
    return f"outbound|9080||{host}" in dump


def test_a_registry_only_sidecar_serves_what_it_lists_and_blocks_the_rest(mesh: Mesh) -> None:
    """The client's Sidecar lists ratings only: reviews is outside its mesh, so refused (502)."""
    plain = "  - name: plain\n    route: [{destination: {host: ratings}}]\n"
    mesh.route("plain", ratings_vs(plain))
    reviews = "reviews.default.svc.cluster.local"
    path = mesh.config_dir / "sidecar.yaml"
    path.write_text(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata: {name: default, namespace: default}\nspec:\n"
        '  egress: [{hosts: ["./ratings.default.svc.cluster.local"]}]\n'
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
    )
    try:
        eventually(lambda: not _has_cluster(mesh, reviews), what="Envoy under the Sidecar")
        assert _has_cluster(mesh, "ratings.default.svc.cluster.local")
        assert {r.status for r in mesh.call(RATINGS_VIP, "ratings", 20)} == {200}
        assert {r.status for r in mesh.call(REVIEWS_VIP, "reviews", 20)} == {502}
    finally:
        path.unlink()
    eventually(lambda: _has_cluster(mesh, reviews), what="reviews back in Envoy")
    assert {r.status for r in mesh.call(REVIEWS_VIP, "reviews", 20)} == {200}


def _endpoint_weights(mesh: Mesh, host: str) -> dict[str, int]:
    """Envoy's endpoints of a service's default cluster: address -> load-balancing weight."""
    weights = {}
    prefix = f"outbound|9080||{host}::"
    for line in mesh.envoy.admin("/clusters").text.splitlines():
        if line.startswith(prefix) and "::weight::" in line:
            address, _, value = line.removeprefix(prefix).partition("::weight::")
            weights[address] = int(value)
    return weights


def test_an_endpoint_change_updates_its_cluster_and_envoy_keeps_the_others(mesh: Mesh) -> None:
    """Only ratings' assignment is sent for a change of ratings' endpoint (incremental EDS):
    Envoy must apply it and keep reviews' endpoints, which that response does not name."""
    ratings, reviews = "ratings.default.svc.cluster.local", "reviews.default.svc.cluster.local"
    before = _endpoint_weights(mesh, reviews)
    assert len(before) == 3
    heavier = MESH.replace(
        "metadata: {name: ratings-v1}\nspec: {address: 127.0.0.21,",
        "metadata: {name: ratings-v1}\nspec: {address: 127.0.0.21, weight: 7,",
    )
    assert heavier != MESH
    (mesh.config_dir / "mesh.yaml").write_text(heavier)
    try:
        eventually(
            lambda: _endpoint_weights(mesh, ratings) == {"127.0.0.21:9080": 7},
            what="ratings' new weight in Envoy",
        )
        assert _endpoint_weights(mesh, reviews) == before
        assert {r.status for r in mesh.call(REVIEWS_VIP, "reviews", 30)} == {200}
    finally:
        (mesh.config_dir / "mesh.yaml").write_text(MESH)
    eventually(
        lambda: _endpoint_weights(mesh, ratings) == {"127.0.0.21:9080": 1},
        what="ratings' weight back in Envoy",
    )
