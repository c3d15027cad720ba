"""The mesh's end-to-end scenarios, on any `Cluster` (e2e/cluster.py) running the sample.

Each scenario starts from the sample as deployed (`cluster.reset()`), applies the sample's own
routing YAML, waits until the behaviour shows up (config takes a moment to reach Envoy, on
any platform), then measures it with enough requests to mean something. Requests are sent
from inside a workload, so they go through its sidecar exactly as the app's own would.

Who sends what:
- calls to reviews come from productpage-v1 (the routing decision is its sidecar's);
- calls to ratings come from reviews-v2 (the only caller that matters for ratings rules);
- whole pages come from details-v1, a workload that is not productpage, so the page passes
  one sidecar out and productpage's sidecar in.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from e2e.cluster import Cluster, Reply, metric_total
from e2e.figures import report
from istiolite.testing.wait import eventually

NETWORKING = Path(__file__).resolve().parent.parent / "samples" / "bookinfo" / "networking"
DESTINATION_RULES = NETWORKING / "destination-rule-all.yaml"
REVIEWS = "http://reviews:9080/reviews/1"
RATINGS = "http://ratings:9080/ratings/1"
PRODUCTPAGE = "http://productpage:9080/productpage"
RATINGS_CONTROL = "http://127.0.0.1:9080/control"  # from inside ratings-v1: no sidecar hop
JASON = {"end-user": "jason"}
WORKLOADS = ("details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1")
RESTARTS = "istio_agent_envoy_restarts_total"
CRASHES = RESTARTS + '{reason="crash"}'
HANGS = RESTARTS + '{reason="unhealthy"}'

# Istio turns retries off with `attempts: 0` (without a retries block its default applies).
RATINGS_WITHOUT_RETRIES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
    - ratings
  http:
    - route:
        - destination:
            host: ratings
            subset: v1
      retries:
        attempts: 0
"""


# Istio's circuit-breaking task, on ratings: one connection, one request waiting for it.
RATINGS_CIRCUIT_BREAKER = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ratings
spec:
  host: ratings
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
"""

# reviews without a version split: one cluster holding v1, v2 and v3. No retries, so what the
# callers see is what the endpoints answer; ejection after one 5xx.
REVIEWS_WITHOUT_RETRIES = """
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
      retries:
        attempts: 0
"""
REVIEWS_OUTLIER_DETECTION = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 50
"""
OVERLOADED = "x-envoy-overloaded"


def apply_sample(cluster: Cluster, *names: str) -> None:
    cluster.apply(DESTINATION_RULES)
    for name in names:
        cluster.apply(NETWORKING / name)


def versions(replies: Sequence[Reply]) -> Counter[str]:
    return Counter(str(r.json.get("version")) for r in replies)


def statuses(replies: Sequence[Reply]) -> Counter[int | None]:
    return Counter(r.status for r in replies)


def summary(replies: Sequence[Reply]) -> str:
    """What a failed assertion should show: statuses, versions and the first error."""
    errors = [r.error or str(r.body)[:300] for r in replies if not r.ok]
    first = f", first failure: {errors[0]}" if errors else ""
    return f"statuses {dict(statuses(replies))}, versions {dict(versions(replies))}{first}"


def when_all(
    replies: Sequence[Reply], condition: Callable[[Reply], bool]
) -> Sequence[Reply] | None:
    return replies if replies and all(map(condition, replies)) else None


def test_header_routing_sends_jason_to_v2_every_time(cluster: Cluster) -> None:
    cluster.reset()
    apply_sample(cluster, "virtual-service-reviews-jason-v2.yaml")

    def jason_on_v2() -> Sequence[Reply] | None:
        replies = cluster.request("productpage-v1", REVIEWS, n=20, headers=JASON, concurrency=4)
        return when_all(replies, lambda r: r.ok and r.json.get("version") == "v2")

    eventually(jason_on_v2, what="end-user: jason routed to reviews v2")

    jason = cluster.request("productpage-v1", REVIEWS, n=1000, headers=JASON, concurrency=8)
    assert versions(jason) == {"v2": 1000}, summary(jason)
    others = cluster.request("productpage-v1", REVIEWS, n=200, concurrency=8)
    assert versions(others) == {"v1": 200}, summary(others)
    # On the second hop too: productpage forwards end-user, its sidecar routes on it.
    pages = cluster.request("details-v1", PRODUCTPAGE, n=50, headers=JASON, concurrency=4)
    shown = Counter(p.json["reviews"]["body"]["version"] for p in pages if p.ok)
    assert shown == {"v2": 50}, summary(pages)


def test_weights_split_reviews_80_20(cluster: Cluster) -> None:
    cluster.reset()
    apply_sample(cluster, "virtual-service-reviews-80-20.yaml")

    def v3_gone() -> Sequence[Reply] | None:
        replies = cluster.request("productpage-v1", REVIEWS, n=50, concurrency=4)
        return when_all(replies, lambda r: r.ok and r.json.get("version") in ("v1", "v2"))

    eventually(v3_gone, what="reviews v3 out of rotation (80/20 between v1 and v2)")

    replies = cluster.request("productpage-v1", REVIEWS, n=1000, concurrency=8)
    seen = versions(replies)
    assert seen["v1"] + seen["v2"] == 1000, summary(replies)
    assert abs(seen["v2"] / 10 - 20) <= 5, f"v2 got {seen['v2'] / 10:.1f}% (want 20 ± 5)"
    report(
        "weights", f"reviews 80/20: v1 {seen['v1'] / 10:.1f}%, v2 {seen['v2'] / 10:.1f}% of 1000"
    )


def test_retries_hide_a_flaky_ratings(cluster: Cluster) -> None:
    cluster.reset()
    flaky = {"fail_status": 503, "fail_ratio": 0.5}
    [knob] = cluster.request("ratings-v1", RATINGS_CONTROL, method="POST", body=flaky)
    assert knob.ok, summary([knob])
    cluster.apply(DESTINATION_RULES)
    cluster.apply(RATINGS_WITHOUT_RETRIES)

    def failures_show() -> Sequence[Reply] | None:
        replies = cluster.request("reviews-v2", RATINGS, n=20)
        return replies if sum(not r.ok for r in replies) >= 5 else None

    eventually(failures_show, what="ratings failures reaching reviews without retries")
    bare = cluster.request("reviews-v2", RATINGS, n=1000, concurrency=4)
    bare_success = sum(r.ok for r in bare) / 10
    assert bare_success <= 60, f"{bare_success}% succeeded without retries: {summary(bare)}"

    cluster.apply(NETWORKING / "virtual-service-ratings-retries.yaml")

    def retries_on() -> Sequence[Reply] | None:
        return when_all(cluster.request("reviews-v2", RATINGS, n=20), lambda r: r.ok)

    eventually(retries_on, what="5 retries hiding every ratings failure")
    retried = cluster.request("reviews-v2", RATINGS, n=1000, concurrency=4)
    success = sum(r.ok for r in retried) / 10
    assert success >= 97, f"{success}% succeeded with 5 retries: {summary(retried)}"
    report(
        "retries",
        f"ratings failing 50%: {bare_success:.1f}% success bare, {success:.1f}% with 5 retries",
    )


def test_timeout_answers_504_before_a_slow_upstream(cluster: Cluster) -> None:
    cluster.reset()
    apply_sample(cluster, "virtual-service-reviews-timeout.yaml")  # reviews v2, 0.5s
    # ratings waits 2s for these requests (the sample's per-request knob; reviews forwards it).
    slow = {"x-bookinfo-delay": "2s", "x-bookinfo-target": "ratings"}

    def timed_out() -> Sequence[Reply] | None:
        replies = cluster.request("productpage-v1", REVIEWS, headers=slow)
        return when_all(replies, lambda r: r.status == 504)

    eventually(timed_out, what="reviews cut off at 0.5s with 504")
    replies = cluster.request("productpage-v1", REVIEWS, n=20, headers=slow, concurrency=10)
    assert statuses(replies) == {504: 20}, summary(replies)
    slowest = max(r.latency for r in replies)
    assert slowest < 1.0, f"a 504 took {slowest:.2f}s (timeout 0.5s)"
    fast = cluster.request("productpage-v1", REVIEWS, n=20, concurrency=4)
    assert versions(fast) == {"v2": 20}, summary(fast)
    # The page itself still answers, in time, and says reviews timed out.
    pages = cluster.request("details-v1", PRODUCTPAGE, n=5, headers=slow, concurrency=5)
    assert [p.json["reviews"]["status"] for p in pages] == [504] * 5, summary(pages)
    assert max(p.latency for p in pages) < 1.0


def test_fault_injection_aborts_and_delays_as_configured(cluster: Cluster) -> None:
    cluster.reset()
    apply_sample(cluster, "virtual-service-reviews-jason-v2.yaml")
    cluster.apply(NETWORKING / "virtual-service-ratings-fault-abort.yaml")

    def aborted() -> Sequence[Reply] | None:
        return when_all(
            cluster.request("reviews-v2", RATINGS, headers=JASON), lambda r: r.status == 500
        )

    eventually(aborted, what="ratings aborted with 500 for jason")
    jason = cluster.request("reviews-v2", RATINGS, n=100, headers=JASON, concurrency=8)
    assert statuses(jason) == {500: 100}, summary(jason)
    others = cluster.request("reviews-v2", RATINGS, n=100, concurrency=8)
    assert statuses(others) == {200: 100}, summary(others)
    # Seen from the page: jason's reviews (v2) say ratings are unavailable, with the 500.
    [page] = cluster.request("details-v1", PRODUCTPAGE, headers=JASON)
    reviews = page.json["reviews"]["body"]
    assert reviews["version"] == "v2" and reviews["ratings"]["status"] == 500, summary([page])

    cluster.apply(NETWORKING / "virtual-service-ratings-fault-delay.yaml")

    def delayed() -> Sequence[Reply] | None:
        replies = cluster.request("reviews-v2", RATINGS, headers=JASON)
        return when_all(replies, lambda r: r.ok and r.latency >= 1.9)

    eventually(delayed, what="ratings delayed 2s for jason")
    jason = cluster.request("reviews-v2", RATINGS, n=10, headers=JASON, concurrency=10)
    assert statuses(jason) == {200: 10}, summary(jason)
    assert min(r.latency for r in jason) >= 1.9, [round(r.latency, 2) for r in jason]
    others = cluster.request("reviews-v2", RATINGS, n=50, concurrency=8)
    assert statuses(others) == {200: 50}, summary(others)
    assert max(r.latency for r in others) < 1.0, "requests without the header were delayed"


def test_circuit_breaker_turns_excess_callers_away_with_overflow_503s(cluster: Cluster) -> None:
    cluster.reset()
    slow = {"x-bookinfo-delay": "300ms"}  # ratings holds each request, so callers overlap
    bare = cluster.request("reviews-v2", RATINGS, n=30, headers=slow, concurrency=10)
    assert statuses(bare) == {200: 30}, f"without a circuit breaker: {summary(bare)}"

    cluster.apply(RATINGS_CIRCUIT_BREAKER)

    def overflowing() -> Sequence[Reply] | None:
        replies = cluster.request("reviews-v2", RATINGS, n=10, headers=slow, concurrency=10)
        return replies if any(OVERLOADED in r.headers for r in replies) else None

    eventually(overflowing, what="ratings' connection pool of 1 overflowing", timeout=60)
    replies = cluster.request("reviews-v2", RATINGS, n=50, headers=slow, concurrency=10)
    turned_away = [r for r in replies if r.status == 503]
    served = [r for r in replies if r.ok]
    assert len(turned_away) + len(served) == 50, summary(replies)
    assert served, f"the pool of 1 must still serve some: {summary(replies)}"
    assert len(turned_away) >= 20, f"10 callers on a pool of 1: {summary(replies)}"
    # Envoy's own answer (no upstream was asked), flagged as an overflow: not retried either.
    assert all(r.headers.get(OVERLOADED) == "true" for r in turned_away), summary(turned_away)
    assert all(r.latency < 0.3 for r in turned_away), [round(r.latency, 3) for r in turned_away]
    report(
        "circuit breaking",
        f"10 callers, pool of 1: {len(turned_away)} of 50 answered 503 {OVERLOADED}, "
        f"{len(served)} served",
    )


def test_outlier_detection_ejects_the_failing_endpoint(cluster: Cluster) -> None:
    cluster.reset()
    [knob] = cluster.request(
        "reviews-v3", "http://127.0.0.1:9080/control", method="POST", body={"fail_status": 503}
    )
    assert knob.ok, summary([knob])
    cluster.apply(REVIEWS_WITHOUT_RETRIES)

    def v3_failing() -> Sequence[Reply] | None:
        replies = cluster.request("productpage-v1", REVIEWS, n=30, concurrency=3)
        return replies if any(r.status == 503 for r in replies) else None

    eventually(v3_failing, what="reviews v3's 503s reaching productpage without retries")
    bare = cluster.request("productpage-v1", REVIEWS, n=300, concurrency=3)
    bare_success = sum(r.ok for r in bare) / 3
    assert bare_success < 80, f"one of three endpoints failing: {summary(bare)}"

    cluster.apply(REVIEWS_OUTLIER_DETECTION)

    def recovered() -> Sequence[Reply] | None:
        replies = cluster.request("productpage-v1", REVIEWS, n=30, concurrency=3)
        return when_all(replies, lambda r: r.ok)

    eventually(recovered, what="reviews v3 ejected: every call answered", timeout=60)
    replies = cluster.request("productpage-v1", REVIEWS, n=300, concurrency=3)
    success = sum(r.ok for r in replies) / 3
    assert success >= 99, f"with v3 ejected: {summary(replies)}"
    assert set(versions([r for r in replies if r.ok])) <= {"v1", "v2"}, summary(replies)
    # ... while v3 still fails: the mesh routes around it, nothing healed it.
    [still] = cluster.request("reviews-v3", "http://127.0.0.1:9080/reviews/1")
    assert still.status == 503, summary([still])
    report(
        "outlier detection",
        f"reviews v3 failing every call: {bare_success:.1f}% success before ejection, "
        f"{success:.1f}% after",
    )


def _page_works(cluster: Cluster) -> Sequence[Reply] | None:
    """productpage's sidecar serves inbound and routes outbound again."""
    pages = cluster.request("details-v1", PRODUCTPAGE, n=5, timeout=3)
    return when_all(pages, lambda p: p.ok and p.json["reviews"]["status"] == 200)


def test_agent_restarts_a_crashed_or_hung_envoy(cluster: Cluster) -> None:
    cluster.reset()
    workload = "productpage-v1"
    app = cluster.app_instance(workload)
    before = cluster.agent_metrics(workload)

    killed = time.monotonic()
    cluster.kill_envoy(workload, signal.SIGKILL)
    eventually(lambda: _page_works(cluster), what="pages again after Envoy was killed")
    healed = time.monotonic() - killed
    crashed = cluster.agent_metrics(workload)
    assert crashed.get(CRASHES, 0) == before.get(CRASHES, 0) + 1

    hung = time.monotonic()
    cluster.kill_envoy(workload, signal.SIGSTOP)  # hung: alive, but answers nothing
    eventually(
        lambda: cluster.agent_metrics(workload).get(HANGS, 0) > crashed.get(HANGS, 0) or None,
        what="the agent noticing the hung Envoy and restarting it",
    )
    eventually(lambda: _page_works(cluster), what="pages again after Envoy hung")
    report(
        "Envoy healed",
        f"killed: pages again after {healed:.2f} s; hung: after {time.monotonic() - hung:.2f} s",
    )
    pages = cluster.request("details-v1", PRODUCTPAGE, n=50, concurrency=4)
    assert statuses(pages) == {200: 50}, summary(pages)
    after = cluster.agent_metrics(workload)
    assert metric_total(after, RESTARTS) == metric_total(before, RESTARTS) + 2
    assert cluster.app_instance(workload) == app, "the app must keep running"


def test_traffic_survives_control_plane_loss_and_new_config_arrives(cluster: Cluster) -> None:
    cluster.reset()
    cluster.stop_discovery()
    try:
        began = time.monotonic()
        while time.monotonic() - began < 10:
            pages = cluster.request("details-v1", PRODUCTPAGE, n=10, concurrency=2)
            ok = [p for p in pages if p.ok and p.json["reviews"]["status"] == 200]
            assert len(ok) == 10, f"with pilot-discovery down: {summary(pages)}"
            time.sleep(0.5)
        # Config changed while the control plane is away: it must arrive once it is back.
        apply_sample(cluster, "virtual-service-reviews-jason-v2.yaml")
    finally:
        cluster.start_discovery()
        back = time.monotonic()

    def jason_on_v2() -> Sequence[Reply] | None:
        replies = cluster.request("productpage-v1", REVIEWS, n=10, headers=JASON)
        return when_all(replies, lambda r: r.json.get("version") == "v2")

    eventually(jason_on_v2, what="new routing config after pilot-discovery came back", timeout=60)

    def all_connected() -> list[str] | None:
        proxies = cluster.connected_proxies()
        missing = [w for w in WORKLOADS if not any(f"~{w}" in p for p in proxies)]
        return proxies if not missing else None

    eventually(all_connected, what="every sidecar reconnected to pilot-discovery", timeout=60)
    report(
        "control plane back",
        f"new routing and every sidecar connected {time.monotonic() - back:.2f} s after "
        "pilot-discovery answered ready",
    )
