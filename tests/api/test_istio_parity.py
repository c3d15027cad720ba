# ruff: noqa: E501  (a table: one case per line reads best, even when long)
"""Istio's own validation rules, case by case, for the subset istiolite supports.

Each case is one of the situations Istio's validation tests cover (pkg/config/validation),
rewritten as the YAML a user would write, with Istio's verdict. Where istiolite decides
differently on purpose, the case says so and docs/api.md ("Differences from Istio's
validation") gives the reason.
"""

from __future__ import annotations

import textwrap

import pytest

from istiolite.api import parse_yaml

R = "route: [{destination: {host: foo.baz}}]"


def vs(spec: str) -> str:
    return _doc("VirtualService", spec)


def dr(spec: str) -> str:
    return _doc("DestinationRule", spec)


def sidecar(spec: str) -> str:
    return _doc("Sidecar", spec)


def _doc(kind: str, spec: str) -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: {kind}\n"
        "metadata: {name: x, namespace: ns5}\nspec:\n" + textwrap.indent(spec, "  ")
    )


def http(route: str, *, hosts: str = "[foo.bar]") -> str:
    """A VirtualService with one HTTP route, written as a flow mapping's contents."""
    return vs(f"hosts: {hosts}\nhttp:\n- {{{route}}}\n")


def policy(traffic_policy: str) -> str:
    return dr(f"host: reviews\ntrafficPolicy: {traffic_policy}\n")


def lb(settings: str) -> str:
    return policy(f"{{loadBalancer: {settings}}}")


def pool(settings: str) -> str:
    return policy(f"{{connectionPool: {settings}}}")


def egress(*hosts: str) -> str:
    return sidecar(f"egress:\n- hosts: [{', '.join(repr(h) for h in hosts)}]\n")


def gateway(spec: str) -> str:
    return _doc("Gateway", spec)


def server(
    port: str, hosts: str = "[foo.bar.com]", *, tls: str | None = None, extra: str = ""
) -> str:
    """A Gateway with one server; `port` and `tls` are flow mappings' contents."""
    tls_line = f"  tls: {{{tls}}}\n" if tls is not None else ""
    return gateway(f"servers:\n- port: {{{port}}}\n  hosts: {hosts}\n{tls_line}{extra}")


def https(tls: str) -> str:
    """An HTTPS server on 443 with these TLS settings."""
    return server("number: 443, name: https, protocol: HTTPS", tls=tls)


def service_entry(spec: str) -> str:
    return _doc("ServiceEntry", spec)


def workload_entry(spec: str) -> str:
    return _doc("WorkloadEntry", spec)


HTTP_PORTS = "ports: [{number: 80, protocol: http, name: http-valid1}, {number: 8080, protocol: http, name: http-valid2}]\n"
GOOGLE_ENDPOINTS = "endpoints: [{address: lon.google.com, ports: {http-valid1: 8080}}, {address: in.google.com, ports: {http-valid2: 9080}}]\n"


# (id, document, Istio accepts it)
CASES = [
    # HTTP routes
    ("route-simple", http(R), True),
    ("route-empty", http(""), False),
    (
        "route-weighted-25-75",
        http(
            "route: [{destination: {host: a.b}, weight: 25}, {destination: {host: c.d}, weight: 75}]"
        ),
        True,
    ),
    (
        "route-total-weight-over-100",
        http(
            "route: [{destination: {host: a.b}, weight: 550}, {destination: {host: c.d}, weight: 500}]"
        ),
        True,
    ),
    (
        "route-total-weight-under-100",
        http(
            "route: [{destination: {host: a.b}, weight: 49}, {destination: {host: c.d}, weight: 50}]"
        ),
        True,
    ),
    (
        "route-weight-100-and-0",
        http(
            "route: [{destination: {host: a.b}, weight: 100}, {destination: {host: c.d}, weight: 0}]"
        ),
        True,
    ),
    ("route-single-weight-0", http("route: [{destination: {host: a.b}, weight: 0}]"), True),
    (
        "route-total-weight-0",
        http(
            "route: [{destination: {host: a.b}, weight: 0}, {destination: {host: c.d}, weight: 0}]"
        ),
        False,
    ),
    (
        "route-negative-weight",
        http(
            "route: [{destination: {host: a.b}, weight: 5}, {destination: {host: c.d}, weight: -1}]"
        ),
        False,
    ),
    ("route-no-destination", http("route: [{weight: 100}]"), False),
    ("route-destination-without-host", http("route: [{destination: {}}]"), False),
    ("destination-bad-wildcard", http("route: [{destination: {host: 'foo.*'}}]"), False),
    ("destination-star", http("route: [{destination: {host: '*'}}]"), False),
    ("destination-namespace-slash", http("route: [{destination: {host: default/baz}}]"), False),
    (
        "destination-full",
        http("route: [{destination: {host: foo.bar, subset: shiny, port: {number: 5000}}}]"),
        True,
    ),
    (
        "destination-port-without-number",
        http("route: [{destination: {host: foo.bar, port: {}}}]"),
        False,
    ),
    ("redirect-simple", http("redirect: {uri: /lerp, authority: foo.biz}"), True),
    ("redirect-and-route", http(R + ", redirect: {uri: /lerp}"), False),
    ("redirect-empty", http("redirect: {}"), False),
    ("redirect-code-299", http("redirect: {uri: t, redirectCode: 299}"), False),
    ("redirect-code-400", http("redirect: {uri: t, redirectCode: 400}"), False),
    ("redirect-code-0", http("redirect: {uri: t, authority: t, redirectCode: 0}"), True),
    ("redirect-code-308", http("redirect: {uri: t, authority: t, redirectCode: 308}"), True),
    ("redirect-authority-only", http("redirect: {authority: t}"), True),
    ("redirect-prefix-rewrite", http("redirect: {prefixRewrite: /bar}"), True),
    (
        "redirect-prefix-rewrite-and-authority",
        http("redirect: {prefixRewrite: /, authority: foo.example.com}"),
        True,
    ),
    ("redirect-prefix-rewrite-and-uri", http("redirect: {uri: /old, prefixRewrite: /new}"), False),
    (
        "redirect-prefix-rewrite-prefix-match",
        http("match: [{uri: {prefix: /foo}}], redirect: {prefixRewrite: /bar}"),
        True,
    ),
    (
        "redirect-prefix-rewrite-exact-match",
        http("match: [{uri: {exact: /foo}}], redirect: {prefixRewrite: /bar}"),
        False,
    ),
    (
        "redirect-prefix-rewrite-regex-match",
        http("match: [{uri: {regex: /foo.*}}], redirect: {prefixRewrite: /bar}"),
        False,
    ),
    (
        "redirect-prefix-rewrite-header-match",
        http("match: [{headers: {x-foo: {exact: bar}}}], redirect: {prefixRewrite: /bar}"),
        True,
    ),
    ("redirect-with-fault", http("redirect: {uri: /a}, fault: {abort: {httpStatus: 500}}"), False),
    ("redirect-with-rewrite", http("redirect: {uri: /a}, rewrite: {uri: /b}"), False),
    (
        "direct-response-with-fault",
        http("directResponse: {status: 200}, fault: {abort: {httpStatus: 500}}"),
        False,
    ),
    (
        "direct-response-with-rewrite",
        http("directResponse: {status: 200}, rewrite: {uri: /b}"),
        False,
    ),
    ("direct-response-with-route", http(R + ", directResponse: {status: 200}"), False),
    ("direct-response-200", http("directResponse: {status: 200}"), True),
    ("direct-response-199", http("directResponse: {status: 199}"), False),
    ("direct-response-601", http("directResponse: {status: 601}"), False),
    (
        "direct-response-string-body",
        http("directResponse: {status: 200, body: {string: hello}}"),
        True,
    ),
    (
        "direct-response-bytes-body",
        http("directResponse: {status: 200, body: {bytes: aGVsbG8=}}"),
        True,
    ),
    (
        "direct-response-101kb-body",
        http("directResponse: {status: 200, body: {string: " + "a" * 101 * 1024 + "}}"),
        True,
    ),
    (
        "direct-response-2mb-body",
        http("directResponse: {status: 200, body: {string: " + "a" * 2 * 1024 * 1024 + "}}"),
        False,
    ),
    (
        "rewrite-uri-and-authority",
        http(R + ", rewrite: {uri: /path/to/resource, authority: foobar.org}"),
        True,
    ),
    ("rewrite-uri", http(R + ", rewrite: {uri: /path/to/resource}"), True),
    ("rewrite-authority", http(R + ", rewrite: {authority: foobar.org}"), True),
    (
        "rewrite-regex",
        http(
            R
            + r", rewrite: {uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\2/instance/\1'}}"
        ),
        True,
    ),
    (
        "rewrite-regex-and-authority",
        http(
            R
            + r", rewrite: {authority: foobar.org, uriRegexRewrite: {match: '^/s/(.*)$', rewrite: '\1'}}"
        ),
        True,
    ),
    (
        "rewrite-regex-and-uri",
        http(R + r", rewrite: {uri: /p, uriRegexRewrite: {match: '^/s/(.*)$', rewrite: '\1'}}"),
        False,
    ),
    ("rewrite-empty", http(R + ", rewrite: {}"), False),
    ("rewrite-empty-uri", http(R + ", rewrite: {uri: ''}"), False),
    ("redirect-empty-uri", http("redirect: {uri: ''}"), False),
    (
        "rewrite-regex-without-match",
        http(R + r", rewrite: {uriRegexRewrite: {rewrite: '\1'}}"),
        False,
    ),
    (
        "rewrite-regex-without-rewrite",
        http(R + ", rewrite: {uriRegexRewrite: {match: '^/s$'}}"),
        False,
    ),
    (
        "rewrite-regex-invalid",
        http(R + ", rewrite: {uriRegexRewrite: {match: '[', rewrite: '['}}"),
        False,
    ),
    # headers
    (
        "headers-valid-empty-values",
        http(
            "route: [{destination: {host: foo.baz}, headers: {request: {add: {name: ''}, set: {name: ''}, remove: [name]}, response: {add: {name: ''}, set: {name: ''}, remove: [name]}}}]"
        ),
        True,
    ),
    ("headers-empty-name-request-add", http(R + ", headers: {request: {add: {'': value}}}"), False),
    ("headers-empty-name-request-set", http(R + ", headers: {request: {set: {'': value}}}"), False),
    ("headers-empty-name-request-remove", http(R + ", headers: {request: {remove: ['']}}"), False),
    (
        "headers-empty-name-response-add",
        http(R + ", headers: {response: {add: {'': value}}}"),
        False,
    ),
    (
        "headers-empty-name-response-set",
        http(R + ", headers: {response: {set: {'': value}}}"),
        False,
    ),
    (
        "headers-empty-name-response-remove",
        http(R + ", headers: {response: {remove: ['']}}"),
        False,
    ),
    (
        "header-value-escaped-percent",
        http(R + ", headers: {response: {set: {i-love-istio: 100%%}}}"),
        True,
    ),
    ("header-value-variable", http(R + ", headers: {response: {set: {name: '%HOSTNAME%'}}}"), True),
    (
        "header-value-unescaped-percent",
        http(R + ", headers: {response: {set: {name: 'abcd%oijasodifj'}}}"),
        False,
    ),
    (
        "header-value-escaped-percent-add",
        http(R + ", headers: {response: {add: {i-love-istio: 100%% and more}}}"),
        True,
    ),
    (
        "header-value-variable-add",
        http(R + ", headers: {response: {add: {name: 'hello %HOSTNAME%'}}}"),
        True,
    ),
    (
        "header-value-unescaped-percent-add",
        http(R + ", headers: {response: {add: {name: 'abcd%oijasodifj'}}}"),
        False,
    ),
    (
        "header-value-peer-cert-time",
        http(
            R
            + ", headers: {request: {set: {x: '%DOWNSTREAM_PEER_CERT_V_END(%b %d %H:%M:%S %Y %Z)%'}}}"
        ),
        True,
    ),
    (
        "header-value-dynamic-metadata",
        http(R + ", headers: {request: {set: {x: '%DYNAMIC_METADATA(com.test.my_filter)%'}}}"),
        True,
    ),
    (
        "header-value-trailing-percent",
        http(R + ", headers: {request: {set: {x: '%START_TIME%%'}}}"),
        False,
    ),
    (
        "header-value-prefix-variable-suffix",
        http(R + ", headers: {request: {set: {x: 'prefix %HOSTNAME% suffix'}}}"),
        True,
    ),
    ("set-authority", http(R + ", headers: {request: {set: {':authority': foo}}}"), True),
    (
        "set-authority-in-destination",
        http(
            "route: [{destination: {host: foo.baz}, headers: {request: {set: {':authority': foo}}}}]"
        ),
        True,
    ),
    (
        "set-authority-in-rewrite-and-header",
        http(R + ", headers: {request: {set: {':authority': foo}}}, rewrite: {authority: bar}"),
        False,
    ),
    ("remove-host-header", http(R + ", headers: {request: {remove: [host]}}"), False),
    ("set-pseudo-header", http(R + ", headers: {request: {set: {':path': /a}}}"), False),
    # matches
    ("match-null-header", http(R + ", match: [{headers: {header: null}}]"), False),
    (
        "match-empty-prefix-header",
        http(R + ", match: [{headers: {emptyprefix: {prefix: ''}}}]"),
        False,
    ),
    ("match-prefix-header", http(R + ", match: [{headers: {header: {prefix: test}}}]"), True),
    ("match-exact-header", http(R + ", match: [{headers: {header: {exact: test}}}]"), True),
    ("match-regex-header", http(R + ", match: [{headers: {header: {regex: test}}}]"), True),
    (
        "match-exact-without-header",
        http(R + ", match: [{withoutHeaders: {header: {exact: test}}}]"),
        True,
    ),
    (
        "match-regex-without-header",
        http(R + ", match: [{withoutHeaders: {header: {regex: test}}}]"),
        True,
    ),
    (
        "match-regex-without-header-question-mark",
        http(R + ", match: [{withoutHeaders: {header: {regex: '?'}}}]"),
        False,
    ),
    (
        "match-regex-without-header-star",
        http(R + ", match: [{withoutHeaders: {header: {regex: '*'}}}]"),
        True,
    ),
    ("match-regex-uri", http(R + ", match: [{uri: {regex: test}}]"), True),
    ("match-prefix-uri", http(R + ", match: [{uri: {prefix: test}}]"), True),
    ("match-exact-uri", http(R + ", match: [{uri: {exact: test}}]"), True),
    ("match-prefix-query", http(R + ", match: [{queryParams: {q: {prefix: test}}}]"), True),
    ("match-exact-query", http(R + ", match: [{queryParams: {q: {exact: test}}}]"), True),
    ("match-empty-prefix-method", http(R + ", match: [{method: {prefix: ''}}]"), False),
    ("match-empty-regex-method", http(R + ", match: [{method: {regex: ''}}]"), False),
    ("match-empty-prefix-uri", http(R + ", match: [{uri: {prefix: ''}}]"), True),
    ("match-empty-regex-uri", http(R + ", match: [{uri: {regex: ''}}]"), False),
    ("match-empty-regex-query", http(R + ", match: [{queryParams: {q: {regex: ''}}}]"), False),
    ("match-empty-regex-scheme", http(R + ", match: [{scheme: {regex: ''}}]"), False),
    ("match-empty-prefix-scheme", http(R + ", match: [{scheme: {prefix: ''}}]"), False),
    (
        "match-header-name-mixed-case",
        http(R + ", match: [{headers: {X-Requested-With: {exact: a}}}]"),
        True,
    ),
    (
        "match-header-name-pseudo",
        http(R + ", match: [{headers: {':authority': {exact: a}}}]"),
        True,
    ),
    ("match-header-name-funky", http(R + ", match: [{headers: {'funky!$#_': {exact: a}}}]"), True),
    ("match-header-name-colons", http(R + ", match: [{headers: {'::': {exact: a}}}]"), False),
    (
        "match-header-name-quote",
        http(R + ", match: [{headers: {'illegal\"char': {exact: a}}}]"),
        False,
    ),
    (
        "match-jwt-claim-without-gateway",
        http(R + ", match: [{headers: {'@request.auth.claims.foo': {exact: bar}}}]"),
        False,
    ),
    (
        "match-source-namespace-invalid",
        http(R + ", match: [{sourceNamespace: Not_A_Namespace}]"),
        False,
    ),
    ("match-source-labels-invalid", http(R + ", match: [{sourceLabels: {'a b': c}}]"), False),
    ("match-port-out-of-range", http(R + ", match: [{port: 70000}]"), False),
    # mirrors, CORS, faults, retries, timeouts
    ("mirror-percentage-over-100", http(R + ", mirrorPercentage: {value: 101}"), False),
    ("mirror-percentage-1-without-mirror", http(R + ", mirrorPercentage: {value: 1}"), True),
    ("mirror-percentage-negative", http(R + ", mirrorPercentage: {value: -1}"), False),
    (
        "cors-valid",
        http(
            R
            + ", corsPolicy: {allowMethods: [GET, POST], allowHeaders: [header1, header2], exposeHeaders: [header3], maxAge: 2s}"
        ),
        True,
    ),
    ("cors-bad-method", http(R + ", corsPolicy: {allowMethods: [GET, PUTT]}"), False),
    ("cors-empty-header", http(R + ", corsPolicy: {exposeHeaders: ['']}"), False),
    ("cors-max-age-nanos", http(R + ", corsPolicy: {maxAge: 2s42ms}"), False),
    (
        "cors-empty-origins",
        http(R + ", corsPolicy: {allowOrigins: [{exact: ''}, {prefix: ''}, {regex: ''}]}"),
        False,
    ),
    (
        "cors-origins",
        http(
            R + ", corsPolicy: {allowOrigins: [{exact: exact}, {prefix: prefix}, {regex: regex}]}"
        ),
        True,
    ),
    (
        "abort-http-200",
        http(R + ", fault: {abort: {httpStatus: 200, percentage: {value: 20}}}"),
        True,
    ),
    ("abort-http-9000", http(R + ", fault: {abort: {httpStatus: 9000}}"), False),
    ("abort-http-100", http(R + ", fault: {abort: {httpStatus: 100}}"), False),
    (
        "abort-small-percentage",
        http(R + ", fault: {abort: {httpStatus: 200, percentage: {value: 0.001}}}"),
        True,
    ),
    (
        "abort-negative-percentage",
        http(R + ", fault: {abort: {httpStatus: 200, percentage: {value: -10}}}"),
        False,
    ),
    ("abort-grpc", http(R + ", fault: {abort: {grpcStatus: DEADLINE_EXCEEDED}}"), True),
    ("abort-grpc-bad", http(R + ", fault: {abort: {grpcStatus: BAD_STATUS}}"), False),
    ("fault-empty", http(R + ", fault: {}"), False),
    ("delay-fixed", http(R + ", fault: {delay: {fixedDelay: 3s, percentage: {value: 20}}}"), True),
    (
        "delay-percent-101",
        http(R + ", fault: {delay: {fixedDelay: 3s, percentage: {value: 101}}}"),
        False,
    ),
    ("delay-sub-millisecond", http(R + ", fault: {delay: {fixedDelay: 3000000042ns}}"), False),
    (
        "delay-small-percentage",
        http(R + ", fault: {delay: {fixedDelay: 3s, percentage: {value: 0.001}}}"),
        True,
    ),
    (
        "retry-valid",
        http(R + ", retries: {attempts: 10, perTryTimeout: 2s, retryOn: '5xx,gateway-error'}"),
        True,
    ),
    ("retry-disabled", http(R + ", retries: {attempts: 0}"), True),
    (
        "retry-policy-with-zero-attempts",
        http(R + ", retries: {attempts: 0, perTryTimeout: 2s, retryOn: 5xx}"),
        False,
    ),
    (
        "retry-status-code",
        http(R + ", retries: {attempts: 10, retryOn: '503,connect-failure'}"),
        True,
    ),
    ("retry-negative-attempts", http(R + ", retries: {attempts: -1}"), False),
    (
        "retry-timeout-nanos",
        http(R + ", retries: {attempts: 10, perTryTimeout: 2000000001ns}"),
        False,
    ),
    ("retry-timeout-too-small", http(R + ", retries: {attempts: 10, perTryTimeout: 999ns}"), False),
    (
        "retry-bad-policy",
        http(R + ", retries: {attempts: 10, retryOn: '5xx,invalid policy'}"),
        False,
    ),
    (
        "retry-bad-status",
        http(R + ", retries: {attempts: 10, retryOn: '600,connect-failure'}"),
        False,
    ),
    # VirtualService as a whole
    ("vs-duplicate-wildcard-hosts", vs(f"hosts: ['*.foo.bar', '*.bar']\nhttp: [{{{R}}}]\n"), False),
    ("vs-bad-host", vs(f"hosts: ['foo.ba!r']\nhttp: [{{{R}}}]\n"), False),
    ("vs-no-routes", vs("hosts: [foo.bar]\n"), False),
    ("vs-star-host-for-mesh", vs(f"hosts: ['*']\nhttp: [{{{R}}}]\n"), False),
    ("vs-tcp-without-route", vs("hosts: [foo.bar]\ntcp: [{match: [{port: 999}]}]\n"), False),
    ("vs-mesh-gateway", vs(f"hosts: [foo.bar]\ngateways: [mesh]\nhttp: [{{{R}}}]\n"), True),
    ("vs-bad-gateway", vs(f"hosts: [foo.bar]\ngateways: ['b@dgateway']\nhttp: [{{{R}}}]\n"), False),
    (
        "vs-export-to-dot-and-star",
        vs(f"hosts: [foo.bar]\nexportTo: ['.', '*']\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-export-to-star-and-ns",
        vs(f"hosts: [foo.bar]\nexportTo: ['*', ns1]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-export-to-dot-and-own-namespace",
        vs(f"hosts: [foo.bar]\nexportTo: ['.', ns5]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-export-to-duplicate",
        vs(f"hosts: [foo.bar]\nexportTo: [ns1, ns2, ns1]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-export-to-invalid-name",
        vs(f"hosts: [foo.bar]\nexportTo: [ns1_]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    ("vs-export-to-none", vs(f"hosts: [foo.bar]\nexportTo: ['~', ns1]\nhttp: [{{{R}}}]\n"), False),
    (
        "vs-export-to-namespaces",
        vs(f"hosts: [foo.bar]\nexportTo: ['.', ns1]\nhttp: [{{{R}}}]\n"),
        True,
    ),
    ("vs-timeout-zero", http(R + ", timeout: 0s"), False),  # deliberate: istiolite takes 0s
    # DestinationRule
    (
        "dr-simple",
        dr(
            "host: reviews\nsubsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
        ),
        True,
    ),
    ("dr-missing-host", dr("host: ''\nsubsets: [{name: v1}]\n"), False),
    (
        "dr-missing-subset-name",
        dr("host: reviews\nsubsets: [{name: '', labels: {version: v1}}]\n"),
        False,
    ),
    (
        "dr-duplicate-subset-names",
        dr("host: reviews\nsubsets: [{name: foo}, {name: foo}]\n"),
        False,
    ),
    (
        "dr-bad-subset-labels",
        dr("host: reviews\nsubsets: [{name: v1, labels: {'a b': v1}}]\n"),
        False,
    ),
    ("dr-export-to-duplicate", dr("host: reviews\nexportTo: [ns1, ns1]\n"), False),
    (
        "traffic-policy-valid",
        policy(
            "{loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {tcp: {maxConnections: 7}, http: {http2MaxRequests: 11}}, outlierDetection: {minHealthPercent: 20}}"
        ),
        True,
    ),
    ("traffic-policy-empty", policy("{}"), False),
    (
        "traffic-policy-empty-connection-pool",
        policy("{loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {}}"),
        False,
    ),
    (
        "subset-traffic-policy-empty-connection-pool",
        dr("host: reviews\nsubsets: [{name: v1, trafficPolicy: {connectionPool: {}}}]\n"),
        False,
    ),
    (
        "traffic-policy-port-level-without-port",
        policy("{portLevelSettings: [{loadBalancer: {simple: ROUND_ROBIN}}]}"),
        False,
    ),
    (
        "traffic-policy-port-level-empty",
        policy("{portLevelSettings: [{port: {number: 80}}]}"),
        False,
    ),
    (
        "traffic-policy-max-connection-duration-nanos",
        policy("{connectionPool: {tcp: {maxConnectionDuration: 500ns}}}"),
        False,
    ),
    (
        "traffic-policy-min-health-negative",
        policy("{outlierDetection: {minHealthPercent: -1}}"),
        False,
    ),
    (
        "traffic-policy-upgrade-and-client-protocol",
        pool("{http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}"),
        False,
    ),
    (
        "traffic-policy-tls-mutual",
        policy("{tls: {mode: ISTIO_MUTUAL}}"),
        True,
    ),  # deliberate: no TLS origination
    (
        "pool-tcp-and-http",
        pool(
            "{tcp: {maxConnections: 7, connectTimeout: 2s}, http: {http1MaxPendingRequests: 2, http2MaxRequests: 11, maxRequestsPerConnection: 5, maxRetries: 4, idleTimeout: 30s, maxConcurrentStreams: 5}}"
        ),
        True,
    ),
    ("pool-tcp-only", pool("{tcp: {maxConnections: 7, connectTimeout: 2s}}"), True),
    ("pool-http-only", pool("{http: {http1MaxPendingRequests: 2, maxRetries: 4}}"), True),
    (
        "pool-zero-means-unset",
        pool(
            "{tcp: {maxConnections: 0}, http: {http1MaxPendingRequests: 0, http2MaxRequests: 0, maxConcurrentStreams: 0}}"
        ),
        True,
    ),
    ("pool-negative-max-connections", pool("{tcp: {maxConnections: -1}}"), False),
    ("pool-connect-timeout-nanos", pool("{tcp: {connectTimeout: 2000000005ns}}"), False),
    ("pool-negative-pending", pool("{http: {http1MaxPendingRequests: -1}}"), False),
    ("pool-negative-requests", pool("{http: {http2MaxRequests: -1}}"), False),
    ("pool-negative-per-connection", pool("{http: {maxRequestsPerConnection: -1}}"), False),
    ("pool-negative-retries", pool("{http: {maxRetries: -1}}"), False),
    ("pool-idle-timeout-nanos", pool("{http: {idleTimeout: 30000000005ns}}"), False),
    ("pool-tcp-idle-timeout-disabled", pool("{tcp: {idleTimeout: 0s}}"), True),
    ("pool-negative-streams", pool("{http: {maxConcurrentStreams: -1}}"), False),
    ("lb-simple", lb("{simple: ROUND_ROBIN}"), True),
    (
        "lb-cookie",
        lb("{consistentHash: {minimumRingSize: 1024, httpCookie: {name: test, ttl: 1h}}}"),
        True,
    ),
    (
        "lb-cookie-without-name",
        lb("{consistentHash: {minimumRingSize: 1024, httpCookie: {ttl: 1h}}}"),
        False,
    ),
    (
        "lb-maglev-not-prime",
        lb("{consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1000}}}"),
        False,
    ),
    (
        "lb-maglev-prime",
        lb("{consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}"),
        True,
    ),
    (
        "lb-maglev-too-large",
        lb("{consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 5000011}}}"),
        False,
    ),
    (
        "lb-ring-size-and-maglev",
        lb(
            "{consistentHash: {httpHeaderName: x-user, minimumRingSize: 1024, maglev: {tableSize: 65537}}}"
        ),
        False,
    ),
    (
        "od-valid",
        policy("{outlierDetection: {interval: 2s, baseEjectionTime: 2s, maxEjectionPercent: 50}}"),
        True,
    ),
    ("od-interval-nanos", policy("{outlierDetection: {interval: 2000000005ns}}"), False),
    (
        "od-ejection-time-nanos",
        policy("{outlierDetection: {baseEjectionTime: 2000000005ns}}"),
        False,
    ),
    ("od-max-ejection-105", policy("{outlierDetection: {maxEjectionPercent: 105}}"), False),
    ("od-min-health-101", policy("{outlierDetection: {minHealthPercent: 101}}"), False),
    (
        "od-local-origin-without-split",
        policy("{outlierDetection: {consecutiveLocalOriginFailures: 10}}"),
        False,
    ),
    # Gateway (TestValidateGateway, TestValidateServer, TestValidateServerPort)
    ("gateway-empty", gateway("{}\n"), False),
    ("gateway-happy-domain", server("name: name1, number: 7, protocol: http"), True),
    (
        "gateway-gateway-api-namespace",
        server("name: name1, number: 7, protocol: http", "['~/foo.bar.com']"),
        False,
    ),
    ("gateway-invalid-port", server("name: name1, number: 66000, protocol: http"), False),
    (
        "gateway-duplicate-port-names",
        gateway(
            "servers:\n- {port: {name: foo, number: 80, protocol: http}, hosts: [foo.bar.com]}\n"
            "- {port: {name: foo, number: 8080, protocol: http}, hosts: [scooby.doo.com]}\n"
        ),
        False,
    ),
    ("gateway-invalid-domain", server("number: 7, protocol: http", "['foo.*.bar.com']"), False),
    (
        "gateway-https-redirect",
        server("name: http, number: 80, protocol: http", "[bar.com]", tls="httpsRedirect: true"),
        True,
    ),
    (
        "gateway-https-redirect-on-https",
        server("name: https, number: 80, protocol: https", "[bar.com]", tls="httpsRedirect: true"),
        True,
    ),  # deliberate: a redirect to HTTPS on an HTTPS server is refused, not warned about
    (
        "gateway-partial-wildcard",
        server("name: tls, number: 443, protocol: tls", "['*bar.com']", tls="mode: SIMPLE"),
        False,
    ),
    ("server-empty", gateway("servers: [{}]\n"), False),
    ("server-no-hosts", server("number: 7, name: http, protocol: http", "[]"), False),
    ("server-happy", server("number: 7, name: http, protocol: http"), True),
    ("server-ip", server("number: 7, name: http, protocol: http", "[1.1.1.1]"), True),
    (
        "server-namespace-host",
        server("number: 7, name: http, protocol: http", "[ns1/foo.bar.com]"),
        True,
    ),
    (
        "server-any-namespace-host",
        server("number: 7, name: http, protocol: http", "['*/foo.bar.com']"),
        True,
    ),
    (
        "server-own-namespace-host",
        server("number: 7, name: http, protocol: http", "[./foo.bar.com]"),
        True,
    ),
    ("server-star", server("number: 7, name: http, protocol: http", "['*']"), True),
    (
        "server-star-in-namespace",
        server("number: 7, name: http, protocol: http", "['ns1/*']"),
        True,
    ),
    (
        "server-wildcard-suffix",
        server("number: 7, name: http, protocol: http", "['*.bar.com']"),
        True,
    ),
    (
        "server-tilde-namespace",
        server("number: 7, name: http, protocol: http", "['~/foo.bar.com']"),
        False,
    ),
    (
        "server-bad-domain-with-namespace",
        server("number: 7, name: http, protocol: http", "['ns1/foo.*.bar.com']"),
        False,
    ),
    ("server-short-name", server("number: 7, name: http, protocol: http", "[foo]"), False),
    ("server-port-66000", server("number: 66000, name: http, protocol: http"), False),
    (
        "server-tls-on-http",
        server("number: 1, name: http, protocol: http", tls="mode: SIMPLE"),
        False,
    ),
    ("server-https-without-tls", server("number: 10000, name: https, protocol: https"), False),
    (
        "server-tls-simple-on-http",
        server("number: 10000, name: http, protocol: http", tls="mode: SIMPLE, credentialName: c"),
        False,
    ),
    (
        "server-tls-on-tcp",
        server("number: 10000, name: tcp, protocol: tcp", tls="mode: SIMPLE, credentialName: c"),
        False,
    ),
    (
        "server-bind-ip",
        server("number: 7, name: http, protocol: http", extra="  bind: 127.0.0.1\n"),
        True,
    ),  # deliberate: bind is not supported
    (
        "server-bind-unix-with-port",
        server("number: 7, name: http, protocol: http", extra="  bind: unix://@foobar\n"),
        False,
    ),
    (
        "server-bind-unix",
        server("number: 0, name: http, protocol: http", extra="  bind: unix://@foobar\n"),
        True,
    ),  # deliberate: bind is not supported
    (
        "server-bind-bad-ip",
        server("number: 0, name: http, protocol: http", extra="  bind: foo.bar\n"),
        False,
    ),
    ("server-port-empty", server(""), False),
    ("server-port-happy", server("protocol: http, number: 1, name: Henry"), True),
    ("server-port-kafka", server("protocol: kafka, number: 1, name: Henry"), False),
    ("server-port-huge", server("protocol: http, number: 1073741824, name: http"), False),
    ("server-port-zero", server("protocol: http, number: 0, name: Henry"), False),
    ("server-port-no-name", server("protocol: http, number: 80"), False),
    (
        "server-port-target-port",
        server("protocol: http, number: 80, name: http, targetPort: 8080"),
        False,
    ),
    (
        "server-port-target-port-zero",
        server("protocol: http, number: 80, name: http, targetPort: 0"),
        True,
    ),
    (
        "server-port-mongo",
        server("protocol: MONGO, number: 27017, name: mongo"),
        True,
    ),  # deliberate: istiolite has no MONGO protocol
    (
        "server-ports-shared-by-http-and-tcp",
        gateway(
            "servers:\n- {port: {name: a, number: 80, protocol: HTTP}, hosts: [a.example.com]}\n"
            "- {port: {name: b, number: 80, protocol: TCP}, hosts: [b.example.com]}\n"
        ),
        True,
    ),  # deliberate: Istio's merge keeps one of the two
    (
        "server-ports-shared-by-https-and-tls",
        gateway(
            "servers:\n- {port: {name: a, number: 443, protocol: HTTPS}, hosts: [a.example.com],"
            " tls: {mode: SIMPLE, credentialName: a}}\n"
            "- {port: {name: b, number: 443, protocol: TLS}, hosts: [b.example.com],"
            " tls: {mode: PASSTHROUGH}}\n"
        ),
        True,
    ),
    # Gateway TLS (TestValidateTlsOptions)
    ("tls-empty", https(""), True),
    (
        "tls-simple-files",
        https(
            "mode: SIMPLE, serverCertificate: Captain Jean-Luc Picard, privateKey: Khan Noonien Singh"
        ),
        True,
    ),  # deliberate: certificates come from Secrets (credentialName) only
    ("tls-simple-sds", https("mode: SIMPLE, credentialName: sds-name"), True),
    (
        "tls-simple-sds-and-files",
        https("mode: SIMPLE, serverCertificate: a, privateKey: b, credentialName: sds-name"),
        False,
    ),
    ("tls-simple-no-certificate", https("mode: SIMPLE, privateKey: Khan Noonien Singh"), False),
    ("tls-simple-no-key", https("mode: SIMPLE, serverCertificate: Captain Jean-Luc Picard"), False),
    (
        "tls-simple-sds-key-only",
        https("mode: SIMPLE, privateKey: Khan Noonien Singh, credentialName: sds-name"),
        True,
    ),  # deliberate: privateKey is not supported
    ("tls-mutual-sds", https("mode: MUTUAL, credentialName: sds-name"), True),
    (
        "tls-mutual-sds-with-ca-file",
        https("mode: MUTUAL, caCertificates: Commander William T. Riker, credentialName: sds-name"),
        True,
    ),  # deliberate: caCertificates is not supported (the Secret holds ca.crt)
    (
        "tls-mutual-no-ca",
        https(
            "mode: MUTUAL, serverCertificate: Captain Jean-Luc Picard, privateKey: Khan Noonien Singh"
        ),
        False,
    ),
    ("tls-mutual-nothing", https("mode: MUTUAL"), False),
    ("tls-optional-mutual-nothing", https("mode: OPTIONAL_MUTUAL"), False),
    (
        "tls-mutual-credential-names",
        https("mode: MUTUAL, credentialNames: [c1, c2]"),
        True,
    ),  # deliberate
    (
        "tls-passthrough-with-credential",
        https("mode: PASSTHROUGH, credentialName: sds-name"),
        True,
    ),  # deliberate: refused rather than warned about
    ("tls-passthrough-with-crl", https("mode: PASSTHROUGH, caCrl: scrl"), True),  # deliberate
    ("tls-istio-mutual", https("mode: ISTIO_MUTUAL"), True),  # deliberate: no mesh mTLS
    ("tls-istio-mutual-with-certificate", https("mode: ISTIO_MUTUAL, serverCertificate: a"), False),
    (
        "tls-istio-mutual-with-credential",
        https("mode: ISTIO_MUTUAL, credentialName: some-cred"),
        False,
    ),
    (
        "tls-cipher-suites",
        https("mode: SIMPLE, credentialName: sds-name, cipherSuites: [ECDHE-ECDSA-AES128-SHA]"),
        True,
    ),  # deliberate: Envoy's default suites
    ("tls-crl-simple", https("mode: SIMPLE, caCrl: crl"), False),
    (
        "tls-crl-with-credential",
        https("mode: SIMPLE, caCrl: crl, credentialName: credential"),
        True,
    ),  # deliberate
    ("tls-mode-lower-case", https("mode: simple, credentialName: c"), False),
    # VirtualServices bound to gateways (TestValidateVirtualService)
    (
        "vs-auto-passthrough-sni-host",
        vs(
            "hosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]\n"
            "gateways: [ns1/gateway]\ntls:\n- match: [{sniHosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]}]\n"
            "  route: [{destination: {host: istiod.istio-system.svc.cluster.local}}]\n"
        ),
        True,
    ),  # deliberate: AUTO_PASSTHROUGH is not supported
    (
        "vs-legacy-fqdn-gateway",
        vs(f"hosts: [foo.bar]\ngateways: [gateway.example.com]\nhttp: [{{{R}}}]\n"),
        True,
    ),
    (
        "vs-namespace-gateway",
        vs(f"hosts: [foo.bar]\ngateways: [ns1/gateway]\nhttp: [{{{R}}}]\n"),
        True,
    ),
    ("vs-gateway-any-name", vs(f"hosts: [foo.bar]\ngateways: ['ns1/*']\nhttp: [{{{R}}}]\n"), False),
    (
        "vs-gateway-any-namespace",
        vs(f"hosts: [foo.bar]\ngateways: ['*/gateway']\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-gateway-own-namespace-dot",
        vs(f"hosts: [foo.bar]\ngateways: [./gateway]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    ("vs-wildcard-for-mesh", vs(f"hosts: ['*']\nhttp: [{{{R}}}]\n"), False),
    (
        "vs-wildcard-for-mesh-and-gateway",
        vs(f"hosts: ['*']\ngateways: [gw, mesh]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-wildcard-for-gateway",
        vs(f"hosts: ['*']\ngateways: [somegateway]\nhttp: [{{{R}}}]\n"),
        True,
    ),
    (
        "vs-wildcard-and-host-for-gateway",
        vs(f"hosts: ['*', foo.com]\ngateways: [gw]\nhttp: [{{{R}}}]\n"),
        False,
    ),
    (
        "vs-tls-route-without-destination",
        vs("hosts: [foo.bar]\ngateways: [gw]\ntls:\n- match: [{sniHosts: [foo.bar]}]\n"),
        False,
    ),
    (
        "vs-tls-route-without-match",
        vs("hosts: [foo.bar]\ngateways: [gw]\ntls:\n- route: [{destination: {host: foo.bar}}]\n"),
        False,
    ),
    (
        "vs-tls-route-for-gateway",
        vs(
            "hosts: ['*.example.com']\ngateways: [gw]\ntls:\n- match: [{sniHosts: [a.example.com], port: 443}]\n"
            "  route: [{destination: {host: a.example.com, port: {number: 443}}}]\n"
        ),
        True,
    ),
    (
        "vs-tls-route-sni-outside-hosts",
        vs(
            "hosts: [foo.bar]\ngateways: [gw]\ntls:\n- match: [{sniHosts: [other.bar]}]\n"
            "  route: [{destination: {host: foo.bar}}]\n"
        ),
        False,
    ),
    (
        "vs-tls-route-ip-sni-host",
        vs(
            "hosts: [foo.bar]\ngateways: [gw]\ntls:\n- match: [{sniHosts: [1.1.1.1]}]\n"
            "  route: [{destination: {host: foo.bar}}]\n"
        ),
        True,
    ),
    (
        "vs-tls-route-bad-sni-wildcard",
        vs(
            "hosts: [foo.bar]\ngateways: [gw]\ntls:\n- match: [{sniHosts: ['foo.*.com']}]\n"
            "  route: [{destination: {host: foo.bar}}]\n"
        ),
        False,
    ),
    (
        "vs-tls-route-for-mesh",
        vs(
            "hosts: [foo.bar]\ntls:\n- match: [{sniHosts: [1.1.1.1]}]\n"
            "  route: [{destination: {host: foo.bar}}]\n"
        ),
        True,
    ),  # deliberate: sidecars have no TLS routes in istiolite
    ("vs-match-gateways", http(R + ", match: [{gateways: [ns1/gw, mesh]}]"), True),
    ("vs-match-bad-gateway", http(R + ", match: [{gateways: ['b@d']}]"), False),
    (
        "vs-tcp-match-gateways",
        vs(
            "hosts: [foo.bar]\ngateways: [gw]\ntcp:\n- match: [{gateways: [gw], port: 31400}]\n  route: [{destination: {host: foo.bar}}]\n"
        ),
        True,
    ),
    # ServiceEntry (TestValidateServiceEntries)
    (
        "se-dns",
        service_entry(
            "hosts: ['*.google.com']\n" + HTTP_PORTS + GOOGLE_ENDPOINTS + "resolution: DNS\n"
        ),
        True,
    ),
    (
        "se-dns-round-robin",
        service_entry(
            "hosts: ['*.istio.io']\n"
            + HTTP_PORTS
            + "endpoints: [{address: api-v1.istio.io, ports: {http-valid1: 8080}}]\nresolution: DNS_ROUND_ROBIN\n"
        ),
        True,
    ),
    (
        "se-dns-tls-mode-label",
        service_entry(
            "hosts: ['*.google.com']\n"
            + HTTP_PORTS
            + "endpoints: [{address: lon.google.com, ports: {http-valid1: 8080}, labels: {security.istio.io/tlsMode: istio}}]\n"
            "resolution: DNS\n"
        ),
        True,
    ),
    (
        "se-dns-one-host-address-https",
        service_entry(
            "hosts: [httpbin.org]\naddresses: [10.10.10.10]\n"
            "ports: [{number: 80, protocol: http, name: http-valid1}, {number: 443, protocol: https, name: https}]\n"
            "resolution: DNS\n"
        ),
        True,
    ),
    (
        "se-dns-two-hosts-address-https",
        service_entry(
            "hosts: [httpbin.org, wikipedia.org]\naddresses: [10.10.10.10]\n"
            "ports: [{number: 80, protocol: http, name: http-valid1}, {number: 443, protocol: https, name: https}]\n"
            "resolution: DNS\n"
        ),
        True,
    ),
    (
        "se-dns-address",
        service_entry(
            "hosts: ['*.google.com']\naddresses: [10.10.10.10]\n"
            + HTTP_PORTS
            + GOOGLE_ENDPOINTS
            + "resolution: DNS\n"
        ),
        True,
    ),
    (
        "se-dns-ip-endpoint",
        service_entry(
            "hosts: ['*.google.com']\n"
            + HTTP_PORTS
            + "endpoints: [{address: 1.1.1.1, ports: {http-valid1: 8080}}, {address: in.google.com, ports: {http-valid2: 9080}}]\nresolution: DNS\n"
        ),
        True,
    ),
    (
        "se-dynamic-dns",
        service_entry("hosts: ['*.google.com']\n" + HTTP_PORTS + "resolution: DYNAMIC_DNS\n"),
        True,
    ),  # deliberate
    (
        "se-dynamic-dns-tcp",
        service_entry(
            "hosts: ['*.google.com']\nports: [{number: 81, protocol: TCP, name: tcp-valid1}]\nresolution: DYNAMIC_DNS\n"
        ),
        False,
    ),
    (
        "se-empty-hosts",
        service_entry(
            "ports: [{number: 80, protocol: http, name: http-valid1}]\nresolution: DNS\n"
        ),
        False,
    ),
    (
        "se-bad-host",
        service_entry(
            "hosts: ['-']\nports: [{number: 80, protocol: http, name: http-valid1}]\nresolution: DNS\n"
        ),
        False,
    ),
    (
        "se-full-wildcard",
        service_entry(
            "hosts: [foo.com, '*']\nports: [{number: 80, protocol: http, name: http-valid1}]\nresolution: DNS\n"
        ),
        False,
    ),
    (
        "se-short-name",
        service_entry(
            "hosts: [foo, bar.com]\nports: [{number: 80, protocol: http, name: http-valid1}]\n"
            "endpoints: [{address: in.google.com, ports: {http-valid1: 9080}}]\nresolution: DNS\n"
        ),
        True,
    ),
    (
        "se-undefined-endpoint-port",
        service_entry(
            "hosts: [google.com]\nports: [{number: 80, protocol: http, name: http-valid1}, {number: 8080, protocol: http, name: http-valid2}]\n"
            "endpoints: [{address: lon.google.com, ports: {http-valid1: 8080}}, {address: in.google.com, ports: {http-dne: 9080}}]\nresolution: DNS\n"
        ),
        False,
    ),
    (
        "se-dns-wildcard-endpoint",
        service_entry(
            "hosts: ['*.google.com']\n"
            + HTTP_PORTS
            + "endpoints: [{address: '*.lon.google.com', ports: {http-valid1: 8080}}]\nresolution: DNS\n"
        ),
        False,
    ),
    (
        "se-dns-wildcard-host-no-endpoints",
        service_entry("hosts: ['*.google.com']\n" + HTTP_PORTS + "resolution: DNS\n"),
        False,
    ),
    (
        "se-dns-no-endpoints",
        service_entry("hosts: [google.com]\n" + HTTP_PORTS + "resolution: DNS\n"),
        True,
    ),
    (
        "se-dns-unix-endpoint",
        service_entry(
            "hosts: ['*.google.com']\nports: [{number: 80, protocol: http, name: http-valid1}]\nendpoints: [{address: 'unix:///lon/google/com'}]\nresolution: DNS\n"
        ),
        False,
    ),
    ("se-none", service_entry("hosts: [google.com]\n" + HTTP_PORTS + "resolution: NONE\n"), True),
    ("se-default-resolution", service_entry("hosts: [google.com]\n" + HTTP_PORTS), True),
    (
        "se-none-endpoints",
        service_entry(
            "hosts: [google.com]\n"
            + HTTP_PORTS
            + "endpoints: [{address: lon.google.com, ports: {http-valid1: 8080}}]\nresolution: NONE\n"
        ),
        False,
    ),
    (
        "se-none-cidr",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16/16]\n" + HTTP_PORTS + "resolution: NONE\n"
        ),
        True,
    ),
    (
        "se-static-cidr-endpoints",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16/16]\n"
            + HTTP_PORTS
            + "endpoints: [{address: 1.1.1.1, ports: {http-valid1: 8080}}, {address: 2.2.2.2, ports: {http-valid2: 9080}}]\nresolution: STATIC\n"
        ),
        True,
    ),
    (
        "se-static",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16]\n"
            + HTTP_PORTS
            + "endpoints: [{address: 1.1.1.1, ports: {http-valid1: 8080}}, {address: 2.2.2.2, ports: {http-valid2: 9080}}]\nresolution: STATIC\n"
        ),
        True,
    ),
    (
        "se-static-fqdn-endpoint",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16]\n"
            + HTTP_PORTS
            + "endpoints: [{address: google.com, ports: {http-valid1: 8080}}, {address: 2.2.2.2, ports: {http-valid2: 9080}}]\nresolution: STATIC\n"
        ),
        False,
    ),
    (
        "se-static-no-endpoints",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16]\n" + HTTP_PORTS + "resolution: STATIC\n"
        ),
        True,
    ),
    (
        "se-static-undefined-endpoint-port",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16]\n"
            + HTTP_PORTS
            + "endpoints: [{address: 1.1.1.1, ports: {http-valid1: 8080}}, {address: 2.2.2.2, ports: {http-dne: 9080}}]\nresolution: STATIC\n"
        ),
        False,
    ),
    (
        "se-port-names-conflict",
        service_entry(
            "hosts: [google.com]\nports: [{number: 80, protocol: http, name: http-conflict}, {number: 8080, protocol: http, name: http-conflict}]\n"
        ),
        False,
    ),
    (
        "se-port-numbers-conflict",
        service_entry(
            "hosts: [google.com]\nports: [{number: 80, protocol: http, name: http-conflict1}, {number: 80, protocol: http, name: http-conflict2}]\n"
        ),
        False,
    ),
    (
        "se-port-without-name",
        service_entry("hosts: [google.com]\nports: [{number: 80, protocol: http}]\n"),
        False,
    ),
    (
        "se-port-bad-name",
        service_entry("hosts: [google.com]\nports: [{number: 80, protocol: http, name: Http_1}]\n"),
        False,
    ),
    (
        "se-port-kafka",
        service_entry(
            "hosts: [google.com]\nports: [{number: 9092, protocol: kafka, name: kafka}]\n"
        ),
        False,
    ),
    (
        "se-unix-socket",
        service_entry(
            "hosts: [uds.cluster.local]\nports: [{number: 6553, protocol: grpc, name: grpc-service1}]\nresolution: STATIC\nendpoints: [{address: 'unix:///path/to/socket'}]\n"
        ),
        True,
    ),  # deliberate: no unix domain socket endpoints
    (
        "se-unix-socket-relative",
        service_entry(
            "hosts: [uds.cluster.local]\nports: [{number: 6553, protocol: grpc, name: grpc-service1}]\nresolution: STATIC\nendpoints: [{address: 'unix://./relative/path.sock'}]\n"
        ),
        False,
    ),
    (
        "se-empty-protocol",
        service_entry(
            "hosts: [google.com]\naddresses: [172.1.2.16/16]\nports: [{number: 80, protocol: http, name: http-valid1}, {number: 8080, name: http-valid2}]\nresolution: NONE\n"
        ),
        True,
    ),
    (
        "se-selector",
        service_entry(
            "hosts: [google.com]\nworkloadSelector: {labels: {foo: bar}}\nports: [{number: 80, protocol: http, name: http-valid1}]\n"
        ),
        True,
    ),  # deliberate
    (
        "se-selector-and-endpoints",
        service_entry(
            "hosts: [google.com]\nworkloadSelector: {labels: {foo: bar}}\nports: [{number: 80, protocol: http, name: http-valid1}]\nendpoints: [{address: 1.1.1.1}]\n"
        ),
        False,
    ),
    (
        "se-target-ports-repeated",
        service_entry(
            "hosts: [google.com]\nresolution: DNS\nports: [{number: 80, protocol: http, name: http-valid1, targetPort: 80}, {number: 81, protocol: http, name: http-valid2, targetPort: 80}]\n"
        ),
        True,
    ),
    (
        "se-target-port",
        service_entry(
            "hosts: [google.com]\nresolution: DNS\nports: [{number: 80, protocol: http, name: http-valid1, targetPort: 81}]\n"
        ),
        True,
    ),
    (
        "se-target-port-zero",
        service_entry(
            "hosts: [google.com]\nresolution: DNS\nports: [{number: 80, protocol: http, name: http-valid1, targetPort: 0}]\n"
        ),
        True,
    ),
    (
        "se-target-port-65536",
        service_entry(
            "hosts: [google.com]\nresolution: DNS\nports: [{number: 80, protocol: http, name: http-valid1, targetPort: 65536}]\n"
        ),
        False,
    ),
    (
        "se-endpoint-port",
        service_entry(
            "hosts: [google.com]\nports: [{number: 80, protocol: http, name: http-valid1, targetPort: 81}]\nresolution: STATIC\nendpoints: [{address: 1.1.1.1, ports: {http-valid1: 8081}}]\n"
        ),
        True,
    ),
    (
        "se-endpoint-port-65536",
        service_entry(
            "hosts: [google.com]\nports: [{number: 80, protocol: http, name: http-valid1, targetPort: 81}]\nresolution: STATIC\nendpoints: [{address: 1.1.1.1, ports: {http-valid1: 65536}}]\n"
        ),
        False,
    ),
    (
        "se-no-protocol-no-addresses",
        service_entry(
            "hosts: [google.com]\naddresses: []\nports: [{number: 80, protocol: http, name: http-valid1}, {number: 8080, name: http-valid2}]\nresolution: NONE\n"
        ),
        True,
    ),
    (
        "se-tcp-no-addresses",
        service_entry(
            "hosts: [google.com]\nports: [{number: 80, protocol: http, name: http-valid1}, {number: 81, protocol: TCP, name: tcp-valid1}]\nresolution: NONE\n"
        ),
        True,
    ),
    (
        "se-dns-round-robin-two-endpoints",
        service_entry(
            "hosts: [google.com]\nports: [{number: 8081, protocol: http, name: http-valid1}]\n"
            "endpoints: [{address: api-v1.istio.io, ports: {http-valid1: 8081}}, {address: 1.1.1.2, ports: {http-valid1: 8081}}]\nresolution: DNS_ROUND_ROBIN\n"
        ),
        False,
    ),
    (
        "se-dns-round-robin-no-endpoints",
        service_entry(
            "hosts: [google.com]\nports: [{number: 8081, protocol: http, name: http-valid1}]\nendpoints: []\nresolution: DNS_ROUND_ROBIN\n"
        ),
        True,
    ),
    (
        "se-partial-wildcard-hosts",
        service_entry(
            "hosts: ['*.nytimes.com', '*washingtonpost.com']\nports: [{number: 443, protocol: HTTPS, name: https-nytimes}]\nresolution: NONE\n"
        ),
        True,
    ),
    (
        "se-network-without-address",
        service_entry(
            "hosts: [www.example.com]\nports: [{number: 443, protocol: HTTPS, name: https-example}]\nendpoints: [{network: cluster-1}]\nresolution: STATIC\n"
        ),
        True,
    ),  # deliberate
    (
        "se-cidr-with-dns",
        service_entry("hosts: [example.com]\naddresses: [1.2.3.4/16]\nresolution: DNS\n"),
        False,
    ),
    ("se-bad-cidr", service_entry("hosts: [example.com]\naddresses: [1.2.3.4/99]\n"), False),
    (
        "se-two-hosts-tcp-dns",
        service_entry(
            "hosts: [a.example.com, b.example.com]\nports: [{number: 5432, protocol: TCP, name: tcp}]\nresolution: DNS\n"
        ),
        False,
    ),
    (
        "se-two-hosts-tcp-none",
        service_entry(
            "hosts: [a.example.com, b.example.com]\nports: [{number: 5432, protocol: TCP, name: tcp}]\nresolution: NONE\n"
        ),
        True,
    ),
    ("se-export-to-nobody", service_entry("hosts: [example.com]\nexportTo: ['~']\n"), True),
    (
        "se-export-to-nobody-and-a-namespace",
        service_entry("hosts: [example.com]\nexportTo: ['~', ns1]\n"),
        False,
    ),
    (
        "se-export-to-dot-and-own-namespace",
        service_entry("hosts: [example.com]\nexportTo: ['.', ns5]\n"),
        False,
    ),
    (
        "se-location-internal",
        service_entry(
            "hosts: [db.internal]\nlocation: MESH_INTERNAL\nports: [{number: 5432, protocol: TCP, name: tcp}]\n"
        ),
        True,
    ),
    (
        "se-location-unknown",
        service_entry("hosts: [db.internal]\nlocation: MESH_SOMEWHERE\n"),
        False,
    ),
    # WorkloadEntry (TestValidateWorkloadEntry)
    ("we-valid", workload_entry("address: 1.2.3.4\n"), True),
    ("we-missing-address", workload_entry("{}\n"), False),
    ("we-missing-address-with-network", workload_entry("network: network-2\n"), True),  # deliberate
    ("we-unix-endpoint", workload_entry("address: 'unix:///lon/google/com'\n"), True),  # deliberate
    (
        "we-unix-endpoint-with-ports",
        workload_entry("address: 'unix:///lon/google/com'\nports: {'7777': 7777}\n"),
        False,
    ),
    ("we-fqdn", workload_entry("address: validdns.com\nports: {'7777': 7777}\n"), True),
    (
        "we-fqdn-with-port",
        workload_entry("address: 'invaliddns.com:9443'\nports: {'7777': 7777}\n"),
        False,
    ),
    ("we-ip", workload_entry("address: 172.16.1.1\nports: {'7777': 7777}\n"), True),
    ("we-bad-port-name", workload_entry("address: 172.16.1.1\nports: {Http_1: 80}\n"), False),
    ("we-bad-label", workload_entry("address: 172.16.1.1\nlabels: {'-bad': x}\n"), False),
    # Sidecar
    ("sidecar-empty", sidecar("{}\n"), False),
    ("sidecar-default", egress("*/*"), True),
    (
        "sidecar-selector-without-labels",
        sidecar("workloadSelector: {}\negress:\n- hosts: ['*/*']\n"),
        True,
    ),
    ("sidecar-local-wildcard", egress("./*"), True),
    ("sidecar-local-fqdn", egress("./foo.com"), True),
    ("sidecar-import-nothing", egress("~/*"), True),
    ("sidecar-all-but-a-namespace", egress("*/*", "~ns1/*"), True),
    ("sidecar-all-but-a-host", egress("*/*", "~/foo.com"), True),
    ("sidecar-exclude-invalid-namespace", egress("*/*", "~Invalid_NS/*"), False),
    ("sidecar-bad-host-star", egress("*"), False),
    ("sidecar-bad-host-slash", egress("/"), False),
    ("sidecar-no-hosts", sidecar("egress:\n- hosts: []\n"), False),
    ("sidecar-short-name", egress("ns1/bar"), False),
    ("sidecar-partial-wildcard", egress("test/*a.com"), False),
    ("sidecar-wildcard-and-host", egress("*/*", "test/a.com"), True),
    ("sidecar-only-outbound-policy", sidecar("outboundTrafficPolicy: {mode: ALLOW_ANY}\n"), True),
    (
        "sidecar-dynamic-dns-mode",
        sidecar("outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}\n"),
        False,
    ),
    (
        "sidecar-selector-wildcard",
        sidecar("workloadSelector: {labels: {app: '*'}}\negress:\n- hosts: ['*/*']\n"),
        False,
    ),
]
# Cases where istiolite decides otherwise on purpose (docs/api.md lists each with its reason).
DELIBERATE = {
    "vs-timeout-zero": True,
    "traffic-policy-tls-mutual": False,
    "gateway-https-redirect-on-https": False,
    "server-bind-ip": False,
    "server-bind-unix": False,
    "server-port-mongo": False,
    "server-ports-shared-by-http-and-tcp": False,
    "tls-simple-files": False,
    "tls-simple-sds-key-only": False,
    "tls-mutual-sds-with-ca-file": False,
    "tls-mutual-credential-names": False,
    "tls-passthrough-with-credential": False,
    "tls-passthrough-with-crl": False,
    "tls-istio-mutual": False,
    "tls-cipher-suites": False,
    "tls-crl-with-credential": False,
    "vs-auto-passthrough-sni-host": False,
    "vs-tls-route-for-mesh": False,
    "se-dynamic-dns": False,
    "se-unix-socket": False,
    "se-selector": False,
    "se-network-without-address": False,
    "we-missing-address-with-network": False,
    "we-unix-endpoint": False,
}


@pytest.mark.parametrize(("document", "istio"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_agrees_with_istio(
    request: pytest.FixtureRequest, document: str, istio: bool
) -> None:
    case = request.node.callspec.id
    expected = DELIBERATE.get(case, istio)
    [parsed] = parse_yaml(document)
    problems = [str(e) for e in parsed.error.errors] if parsed.error else []
    assert (not problems) == expected, problems or "accepted"
