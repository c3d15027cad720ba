"""Validation names the field path and says what is accepted, for every kind of mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from istiolite.api import (
    DestinationRule,
    ValidationError,
    VirtualService,
    parse_resource,
    parse_yaml,
)
from istiolite.api.networking import SimpleLB
from istiolite.cli import main

TESTDATA = Path(__file__).parent / "testdata"


def vs(spec: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: reviews, namespace: default}\nspec:\n" + textwrap.indent(spec, "  ")
    )


def dr(spec: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: reviews, namespace: default}\nspec:\n" + textwrap.indent(spec, "  ")
    )


ROUTE = "route:\n  - destination: {host: reviews}\n"

# (id, document, expected field path, fragment of the message)
BROKEN = [
    (
        "weight-negative",
        vs(
            "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n"
            "    weight: 0\n  - destination: {host: reviews, subset: v2}\n    weight: -20\n"
        ),
        "spec.http[0].route[1].weight",
        "must be 0..2147483647, got -20",
    ),
    (
        "weights-all-zero",
        vs(
            "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n"
            "    weight: 0\n  - destination: {host: reviews, subset: v2}\n    weight: 0\n"
        ),
        "spec.http[0].route",
        "the weights add up to 0",
    ),
    (
        "unknown-field-typo",
        vs("hosts: [reviews]\nhttp:\n- rout:\n  - destination: {host: reviews}\n"),
        "spec.http[0].rout",
        "did you mean 'route'?",
    ),
    (
        "unknown-field-lists-accepted",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  retries: {attempts: 2, tries: 3}\n"),
        "spec.http[0].retries.tries",
        "accepted: attempts, perTryTimeout, retryOn",
    ),
    (
        "duration-no-unit",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  timeout: 10\n"),
        "spec.http[0].timeout",
        "must be a duration such as '1.5s'",
    ),
    (
        "duration-bad-unit",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  timeout: 1.5sec\n"),
        "spec.http[0].timeout",
        "got '1.5sec'",
    ),
    (
        "per-try-timeout-zero",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  retries: {attempts: 3, perTryTimeout: 0s}\n"),
        "spec.http[0].retries.perTryTimeout",
        "must be at least 1ms",
    ),
    (
        "regex-lookahead",
        vs("hosts: [reviews]\nhttp:\n- match:\n  - uri: {regex: '(?=api)/v1'}\n  " + ROUTE),
        "spec.http[0].match[0].uri.regex",
        "lookarounds and backreferences are not supported",
    ),
    (
        "regex-backreference",
        vs(
            "hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      x-id: {regex: '(a)\\1'}\n  "
            + ROUTE
        ),
        "spec.http[0].match[0].headers.x-id.regex",
        "not a valid RE2 regex",
    ),
    (
        "subset-not-dns-label",
        dr("host: reviews\nsubsets:\n- name: V1_beta\n  labels: {version: v1}\n"),
        "spec.subsets[0].name",
        "must be a DNS label",
    ),
    (
        "route-subset-not-dns-label",
        vs("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: Canary}\n"),
        "spec.http[0].route[0].destination.subset",
        "must be a DNS label",
    ),
    (
        "string-match-two-kinds",
        vs("hosts: [reviews]\nhttp:\n- match:\n  - uri: {exact: /a, prefix: /b}\n  " + ROUTE),
        "spec.http[0].match[0].uri",
        "must set only one of exact, prefix, regex",
    ),
    (
        "no-action",
        vs("hosts: [reviews]\nhttp:\n- timeout: 1s\n"),
        "spec.http[0]",
        "must set one of route, redirect, directResponse",
    ),
    (
        "route-and-redirect",
        vs("hosts: [reviews]\nhttp:\n- redirect: {uri: /new}\n  " + ROUTE),
        "spec.http[0]",
        "got route, redirect",
    ),
    (
        "abort-status-out-of-range",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  fault: {abort: {httpStatus: 700}}\n"),
        "spec.http[0].fault.abort.httpStatus",
        "must be 200..599, got 700",
    ),
    (
        "fault-percentage-over-100",
        vs(
            "hosts: [reviews]\nhttp:\n- "
            + ROUTE
            + "  fault: {delay: {fixedDelay: 1s, percentage: {value: 150}}}\n"
        ),
        "spec.http[0].fault.delay.percentage.value",
        "must be 0 or 0.0001..100, got 150",
    ),
    (
        "deprecated-percent",
        vs(
            "hosts: [reviews]\nhttp:\n- "
            + ROUTE
            + "  fault: {delay: {fixedDelay: 1s, percent: 50}}\n"
        ),
        "spec.http[0].fault.delay.percent",
        "use percentage.value",
    ),
    (
        "gateway-of-every-namespace",
        vs("hosts: [reviews]\ngateways: ['*/bookinfo-gateway']\nhttp:\n- " + ROUTE),
        "spec.gateways[0]",
        "namespace/name with both parts DNS labels",
    ),
    (
        "tls-routes-for-sidecars",
        vs(
            "hosts: [reviews]\ntls:\n- match: [{sniHosts: [reviews]}]\n"
            "  route: [{destination: {host: reviews}}]\n"
        ),
        "spec.tls",
        "TLS (SNI) routes are for gateways' PASSTHROUGH servers",
    ),
    (
        "hosts-missing",
        vs("http:\n- " + ROUTE),
        "spec.hosts",
        "required",
    ),
    (
        "destination-host-missing",
        vs("hosts: [reviews]\nhttp:\n- route:\n  - destination: {subset: v1}\n"),
        "spec.http[0].route[0].destination.host",
        "required",
    ),
    (
        "port-out-of-range",
        vs(
            "hosts: [reviews]\nhttp:\n- route:\n"
            "  - destination: {host: reviews, port: {number: 70000}}\n"
        ),
        "spec.http[0].route[0].destination.port.number",
        "must be a port number 1..65535, got 70000",
    ),
    (
        "retry-on-unknown",
        vs(
            "hosts: [reviews]\nhttp:\n- "
            + ROUTE
            + "  retries: {attempts: 2, retryOn: '5xx,flaky'}\n"
        ),
        "spec.http[0].retries.retryOn",
        "unknown retry condition 'flaky'",
    ),
    (
        "attempts-wrong-type",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  retries: {attempts: three}\n"),
        "spec.http[0].retries.attempts",
        "must be an integer, got string 'three'",
    ),
    (
        "header-name-not-a-token",
        vs(
            "hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      'end user': {exact: jason}\n  "
            + ROUTE
        ),
        "spec.http[0].match[0].headers['end user']",
        "header names must be HTTP tokens",
    ),
    (
        "load-balancer-unknown-simple",
        dr("host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: FASTEST}\n"),
        "spec.trafficPolicy.loadBalancer.simple",
        "must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST",
    ),
    (
        "load-balancer-simple-and-hash",
        dr(
            "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    simple: RANDOM\n"
            "    consistentHash: {useSourceIp: true}\n"
        ),
        "spec.trafficPolicy.loadBalancer",
        "must set only one of simple, consistentHash",
    ),
    (
        "duplicate-subset",
        dr("host: reviews\nsubsets:\n- name: v1\n- name: v1\n"),
        "spec.subsets[1].name",
        "already defined in subsets[0]",
    ),
    (
        "outlier-percent-over-100",
        dr("host: reviews\ntrafficPolicy:\n  outlierDetection: {maxEjectionPercent: 101}\n"),
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "must be 0..100, got 101",
    ),
    (
        "connection-pool-negative-connections",
        dr("host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: -1}\n"),
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "must be 0..2147483647, got -1",
    ),
    (
        "dr-host-wildcard-invalid",
        dr("host: 'reviews!'\n"),
        "spec.host",
        "must be a service name",
    ),
    (
        "mirror-percentage-over-100",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE + "  mirrorPercentage: {value: 101}\n"),
        "spec.http[0].mirrorPercentage.value",
        "must be 0..100, got 101",
    ),
    (
        "spec-not-a-map",
        vs("- hosts\n"),
        "spec",
        "must be a map, got a list",
    ),
    (
        "istio-api-version",
        vs("hosts: [reviews]\nhttp:\n- " + ROUTE).replace("/v1\n", "/v2\n", 1),
        "apiVersion",
        "must be one of networking.istio.io/v1, networking.istio.io/v1beta1",
    ),
]


@pytest.mark.parametrize(
    ("document", "path", "fragment"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_resource_is_rejected_with_its_field_path(
    document: str, path: str, fragment: str
) -> None:
    [parsed] = parse_yaml(document, source="test.yaml")
    assert parsed.error is not None, "expected a validation error"
    messages = [str(e) for e in parsed.error.errors]
    assert any(m.startswith(f"{path}: ") and fragment in m for m in messages), messages


@pytest.mark.parametrize(
    ("document", "path", "fragment"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_analyze_exits_1_and_prints_the_field_path(
    tmp_path: Path, document: str, path: str, fragment: str
) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(document)
    result = CliRunner().invoke(main, ["analyze", "-f", str(file)])
    assert result.exit_code == 1, result.output
    assert f" {path}: " in result.output and fragment in result.output, result.output


def test_error_message_reads_resource_path_problem() -> None:
    doc = BROKEN[0][1]
    with pytest.raises(ValidationError) as info:
        parse_resource(__import__("yaml").safe_load(doc))
    assert str(info.value) == (
        "VirtualService default/reviews: spec.http[0].route[1].weight: must be 0..2147483647, "
        "got -20"
    )


def test_every_problem_in_a_resource_is_reported_at_once() -> None:
    doc = vs(
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n"
        "  timeout: forever\n  retries: {attempts: -1}\n  fault: {abort: {httpStatus: 99}}\n"
    )
    [parsed] = parse_yaml(doc)
    assert parsed.error is not None
    assert [str(e).split(":")[0] for e in parsed.error.errors] == [
        "spec.http[0].timeout",
        "spec.http[0].retries.attempts",
        "spec.http[0].fault.abort.httpStatus",
    ]


def test_bookinfo_style_set_is_accepted_by_analyze() -> None:
    result = CliRunner().invoke(main, ["analyze", "-f", str(TESTDATA / "bookinfo.yaml")])
    assert result.exit_code == 0, result.output
    assert "No validation issues found when analyzing 6 resource(s)." in result.output


def test_bookinfo_style_set_becomes_typed_models() -> None:
    parsed = parse_yaml((TESTDATA / "bookinfo.yaml").read_text())
    resources = {
        (type(p.resource).__name__, p.resource.meta.name): p.resource for p in parsed if p.resource
    }
    reviews_vs = resources["VirtualService", "reviews"]
    assert isinstance(reviews_vs, VirtualService)
    jason, canary = reviews_vs.spec.http
    assert jason.match[0].headers["end-user"].exact == "jason"
    assert [(r.destination.subset, r.weight) for r in canary.route] == [("v1", 80), ("v3", 20)]
    assert canary.timeout is not None and canary.timeout.total_seconds() == 1.5
    assert canary.retries is not None and canary.retries.per_try_timeout is not None
    assert canary.retries.per_try_timeout.total_seconds() == 0.5
    reviews_dr = resources["DestinationRule", "reviews"]
    assert isinstance(reviews_dr, DestinationRule)
    policy = reviews_dr.spec.traffic_policy
    assert policy is not None and policy.load_balancer is not None
    assert policy.load_balancer.simple is SimpleLB.LEAST_REQUEST
    assert [s.labels["version"] for s in reviews_dr.spec.subsets] == ["v1", "v2", "v3"]


def test_models_are_immutable_and_hashable() -> None:
    parsed = parse_yaml((TESTDATA / "bookinfo.yaml").read_text())
    resource = next(p.resource for p in parsed if isinstance(p.resource, VirtualService))
    with pytest.raises(AttributeError):
        resource.spec.hosts = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        resource.spec.http[0].match[0].headers["x"] = None  # type: ignore[index]
    assert hash(resource) == hash(parse_yaml((TESTDATA / "bookinfo.yaml").read_text())[4].resource)


def test_malformed_yaml_names_the_line() -> None:
    [parsed] = parse_yaml("kind: VirtualService\nspec: {hosts: [a\n", source="bad.yaml")
    assert parsed.error is not None
    assert "malformed YAML at line" in str(parsed.error)
