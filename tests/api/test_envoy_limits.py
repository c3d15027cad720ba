"""What validation accepts, Envoy accepts: the rules behind every NACK seen from a real Envoy.

Each kind of config below was once valid for istiolite and rejected by Envoy 1.40. Now either
validation refuses it with the field path and what is accepted, or translation produces what
Envoy takes (tests/discovery/test_envoy_accepts_valid_config.py pushes generated ones to a real
Envoy).
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from istiolite.api import VirtualService, parse_yaml
from istiolite.api.checks import header_value, is_prime
from istiolite.discovery.model import Proxy, build_snapshot
from istiolite.discovery.translate.routes import route_configuration


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


def http(extra: str, *, match: str = "") -> str:
    route = "  route: [{destination: {host: reviews}}]\n"
    return vs("hosts: [reviews]\nhttp:\n- " + (match or "") + route.lstrip() + extra)


# (id, document, field path, fragment of the message)
REFUSED = [
    (
        "header-value-bare-percent",
        http("  headers: {request: {set: {x-load: 100%}}}\n"),
        "spec.http[0].headers.request.set.x-load",
        "write '%%' for a literal '%'",
    ),
    (
        "header-value-percent-digits",
        http("  headers: {response: {add: {x-id: 'abc%123'}}}\n"),
        "spec.http[0].headers.response.add.x-id",
        "write '%%' for a literal '%'",
    ),
    (
        "header-value-unknown-command",
        http(
            "  route: [{destination: {host: reviews}, headers: {request: {set: {x: '%NOPE%'}}}}]\n"
        ),
        "spec.http[0].route[0].headers.request.set.x",
        "'%NOPE%' is not an Envoy command istiolite knows",
    ),
    (
        "header-value-command-without-argument",
        http("  headers: {request: {set: {x-user: '%REQ()%'}}}\n"),
        "spec.http[0].headers.request.set.x-user",
        "the argument of REQ is not valid",
    ),
    (
        "header-value-length-on-plain-command",
        http("  headers: {request: {set: {x-host: '%HOSTNAME:5%'}}}\n"),
        "spec.http[0].headers.request.set.x-host",
        "HOSTNAME takes no argument or length",
    ),
    (
        "header-value-newline",
        http('  headers: {request: {set: {x-a: "a\\nb"}}}\n'),
        "spec.http[0].headers.request.set.x-a",
        "control characters",
    ),
    (
        "header-match-empty-prefix",
        http("", match="match: [{headers: {end-user: {prefix: ''}}}]\n  "),
        "spec.http[0].match[0].headers.end-user.prefix",
        "an empty prefix matches everything and Envoy refuses it",
    ),
    (
        "without-header-empty-prefix",
        http("", match="match: [{withoutHeaders: {end-user: {prefix: ''}}}]\n  "),
        "spec.http[0].match[0].withoutHeaders.end-user.prefix",
        "Envoy refuses it",
    ),
    (
        "query-param-empty-prefix",
        http("", match="match: [{queryParams: {q: {prefix: ''}}}]\n  "),
        "spec.http[0].match[0].queryParams.q.prefix",
        "Envoy refuses it",
    ),
    (
        "method-empty-prefix",
        http("", match="match: [{method: {prefix: ''}}]\n  "),
        "spec.http[0].match[0].method.prefix",
        "Envoy refuses it",
    ),
    (
        "uri-empty-regex",
        http("", match="match: [{uri: {regex: ''}}]\n  "),
        "spec.http[0].match[0].uri.regex",
        "must not be empty",
    ),
    (
        "cors-empty-exact-origin",
        http("  corsPolicy: {allowOrigins: [{exact: ''}]}\n"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "must set a non-empty exact, prefix or regex",
    ),
    (
        "cors-empty-prefix-origin",
        http("  corsPolicy: {allowOrigins: [{exact: a.com}, {prefix: ''}]}\n"),
        "spec.http[0].corsPolicy.allowOrigins[1]",
        "must set a non-empty exact, prefix or regex",
    ),
    (
        "direct-response-over-1mib",
        vs(
            "hosts: [reviews]\nhttp:\n- directResponse: {status: 200, body: {string: '"
            + "a" * (1024 * 1024 + 1)
            + "'}}\n"
        ),
        "spec.http[0].directResponse.body",
        "at most 1048576 (1 MiB)",
    ),
    (
        "direct-response-bytes-not-base64",
        vs("hosts: [reviews]\nhttp:\n- directResponse: {status: 200, body: {bytes: 'no!'}}\n"),
        "spec.http[0].directResponse.body.bytes",
        "must be base64",
    ),
    (
        "maglev-table-not-prime",
        dr(
            "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n"
            "      httpHeaderName: x-user\n      maglev: {tableSize: 1000}\n"
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "must be a prime number below 5000011",
    ),
    (
        "maglev-table-missing",
        dr(
            "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n"
            "      httpHeaderName: x-user\n      maglev: {}\n"
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "required",
    ),
    (
        "cookie-name-empty",
        dr(
            "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n"
            "      httpCookie: {name: '', ttl: 10s}\n"
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
        "must not be empty",
    ),
    (
        "query-parameter-name-empty",
        dr(
            "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n"
            "      httpQueryParameterName: ''\n"
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpQueryParameterName",
        "must not be empty",
    ),
    (
        "ring-size-over-envoys-limit",
        dr(
            "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n"
            "      httpHeaderName: x-user\n      ringHash: {minimumRingSize: 9000000}\n"
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize",
        "must be 0..8388608, got 9000000",
    ),
    (
        "outlier-count-over-uint32",
        dr(
            "host: reviews\ntrafficPolicy:\n"
            "  outlierDetection: {consecutive5xxErrors: 4294967296}\n"
        ),
        "spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
        "must be 0..4294967295",
    ),
    (
        "remove-host-header",
        http("  headers: {request: {remove: [Host]}}\n"),
        "spec.http[0].headers.request.remove[0]",
        "cannot remove 'Host'",
    ),
    (
        "weights-over-envoy-total",
        vs(
            "hosts: [reviews]\nhttp:\n- route:\n"
            "  - {destination: {host: reviews, subset: v1}, weight: 2147483647}\n"
            "  - {destination: {host: reviews, subset: v2}, weight: 2147483647}\n"
            "  - {destination: {host: reviews, subset: v3}, weight: 2147483647}\n"
        ),
        "spec.http[0].route",
        "Envoy takes at most 4294967295",
    ),
]


@pytest.mark.parametrize(
    ("document", "path", "fragment"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_config_envoy_would_refuse_is_refused_with_its_field_path(
    document: str, path: str, fragment: str
) -> None:
    [parsed] = parse_yaml(document)
    assert parsed.error is not None, "validation accepted what Envoy refuses"
    messages = [str(e) for e in parsed.error.errors]
    assert any(m.startswith(f"{path}: ") and fragment in m for m in messages), messages


@pytest.mark.parametrize(
    "value",
    [
        "100%%",
        "%HOSTNAME%",
        "prefix %HOSTNAME% suffix",
        "%DOWNSTREAM_PEER_CERT_V_END(%b %d %H:%M:%S %Y %Z)%",
        "%DYNAMIC_METADATA(com.test.my_filter)%",
        "%REQ(x-user?:authority):10%",
        "%START_TIME(%s)%",
        "%%HOSTNAME%%",
    ],
)
def test_header_values_envoy_formats_are_accepted(value: str) -> None:
    assert header_value(value) is None


def test_maglev_sizes_are_checked_as_envoy_checks_them() -> None:
    assert [n for n in range(60) if is_prime(n)] == [
        *(2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59)
    ]
    assert is_prime(65537) and not is_prime(65535)


def _route_config(document: str) -> dict[str, Any]:
    service = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\n"
        "spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 9080}]}\n---\n"
    )
    parsed = parse_yaml(service + document)
    assert all(p.resource for p in parsed), [p.error for p in parsed]
    snapshot = build_snapshot([p.resource for p in parsed if p.resource])
    proxy = Proxy.from_node("sidecar~10.1.0.5~a.default~default.svc.cluster.local", {})
    return MessageToDict(route_configuration(snapshot, proxy, 9080))


def test_a_direct_response_over_envoys_default_limit_is_sent_with_a_raised_limit() -> None:
    body = "b" * 5000  # Envoy's default limit is 4096 bytes
    config = _route_config(
        vs(
            "hosts: [reviews]\nhttp:\n"
            f"- directResponse: {{status: 200, body: {{string: {body}}}}}\n"
        )
    )
    assert config["maxDirectResponseBodySizeBytes"] == 1024 * 1024
    [host] = [h for h in config["virtualHosts"] if h["name"].startswith("reviews")]
    assert host["routes"][0]["directResponse"]["body"]["inlineString"] == body


def test_setting_the_authority_header_is_a_host_rewrite() -> None:
    config = _route_config(http("  headers: {request: {set: {':authority': api.example.com}}}\n"))
    [host] = [h for h in config["virtualHosts"] if h["name"].startswith("reviews")]
    [route] = host["routes"]
    assert route["route"]["hostRewriteLiteral"] == "api.example.com"
    assert "requestHeadersToAdd" not in route


def test_an_empty_uri_prefix_and_present_matches_are_kept() -> None:
    document = http(
        "",
        match="match: [{uri: {prefix: ''}, queryParams: {debug: {}}, "
        "withoutHeaders: {x-canary: {regex: '*'}}}]\n  ",
    )
    [parsed] = parse_yaml(document)
    assert isinstance(parsed.resource, VirtualService), parsed.error
    config = _route_config(document)
    [host] = [h for h in config["virtualHosts"] if h["name"].startswith("reviews")]
    match = host["routes"][0]["match"]
    assert match["queryParameters"] == [{"name": "debug", "presentMatch": True}]
    assert match["headers"] == [{"name": "x-canary", "presentMatch": True, "invertMatch": True}]


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (
            http("", match="match: [{queryParams: {'': {exact: a}}}]\n  "),
            "spec.http[0].match[0].queryParams['']",
        ),
        (
            vs('hosts: [reviews]\nhttp:\n- redirect: {uri: "/a\\nb"}\n'),
            "spec.http[0].redirect.uri",
        ),
        (http('  rewrite: {authority: "a\\rb"}\n'), "spec.http[0].rewrite.authority"),
    ],
    ids=["query-parameter-without-name", "redirect-with-newline", "rewrite-with-carriage-return"],
)
def test_names_and_paths_envoy_would_refuse_are_refused(document: str, path: str) -> None:
    """Found by the property test against a real Envoy (a query match on the name '')."""
    [parsed] = parse_yaml(document)
    assert parsed.error is not None
    assert any(str(e).startswith(f"{path}: ") for e in parsed.error.errors), parsed.error.errors


def test_an_empty_prefix_rewrite_leaves_the_redirect_uri_alone() -> None:
    config = _route_config(
        vs("hosts: [reviews]\nhttp:\n- redirect: {uri: /new, prefixRewrite: ''}\n")
    )
    [host] = [h for h in config["virtualHosts"] if h["name"].startswith("reviews")]
    assert host["routes"][0]["redirect"] == {"pathRedirect": "/new"}


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (
            dr("host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, sni: reviews.example.com}}\n"),
            "spec.trafficPolicy.tls.sni",
        ),
        (
            dr("host: reviews\ntrafficPolicy: {loadBalancer: {zoneAwareLbSetting: {}}}\n"),
            "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting",
        ),
        (
            dr(
                "host: reviews\ntrafficPolicy:\n  connectionPool:\n"
                "    http: {http2KeepAlive: {interval: 15s, timeout: 5s}}\n"
            ),
            "spec.trafficPolicy.connectionPool.http.http2KeepAlive",
        ),
    ],
    ids=["tls-origination-settings", "zone-aware", "http2-keepalive"],
)
def test_istio_fields_istiolite_lacks_say_not_supported(document: str, path: str) -> None:
    [parsed] = parse_yaml(document)
    assert parsed.error is not None
    messages = [str(e) for e in parsed.error.errors]
    assert any(m.startswith(f"{path}: not supported") for m in messages), messages
