"""Cross-checks that only show when resources are seen together."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from istiolite.analyze import Severity, analyze
from istiolite.api import parse_yaml
from istiolite.cli import main
from tests.api.test_secrets import cert_pem, key_pem

BOOKINFO = (Path(__file__).parent / "testdata" / "bookinfo.yaml").read_text()

EXTRA_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %(name)s}
spec:
  hosts: [%(host)s]
  http:
  - route:
    - destination: {host: %(host)s, subset: %(subset)s}
"""


def findings(text: str) -> list[tuple[Severity, str, str]]:
    return [(f.severity, f.code, f.path) for f in analyze(parse_yaml(text))]


def test_route_to_undefined_subset_is_an_error() -> None:
    text = BOOKINFO.replace("subset: v3}\n      weight: 20", "subset: v4}\n      weight: 20")
    [f] = analyze(parse_yaml(text))
    assert (f.severity, f.code, f.path) == (
        Severity.ERROR,
        "ReferencedResourceNotFound",
        "spec.http[1].route[1].destination.subset",
    )
    assert "subset 'v4' of host reviews.default.svc.cluster.local is not defined" in f.message
    assert "defined: v1, v2, v3" in f.message


def test_two_virtual_services_for_one_host_conflict() -> None:
    text = (
        BOOKINFO
        + "---"
        + EXTRA_VS
        % {"name": "reviews-2", "host": "reviews.default.svc.cluster.local", "subset": "v1"}
    )
    assert findings(text) == [
        (Severity.ERROR, "ConflictingVirtualServiceHosts", "spec.hosts[0]"),
        (Severity.ERROR, "ConflictingVirtualServiceHosts", "spec.hosts[0]"),
    ]


def test_route_to_unknown_service_is_a_warning() -> None:
    text = BOOKINFO + "---" + EXTRA_VS % {"name": "details", "host": "details", "subset": "v1"}
    assert (
        Severity.WARNING,
        "ServiceNotFound",
        "spec.http[0].route[0].destination.host",
    ) in findings(text)


def test_route_to_a_port_the_service_lacks_is_an_error() -> None:
    text = BOOKINFO.replace("port: {number: 9080}", "port: {number: 8080}")
    [f] = analyze(parse_yaml(text))
    assert f.code == "ReferencedResourceNotFound" and "has no port 8080; it has 9080" in f.message


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    file = tmp_path / "vs.yaml"
    file.write_text(EXTRA_VS % {"name": "details", "host": "details", "subset": "v1"})
    result = CliRunner().invoke(main, ["analyze", "-f", str(file)])
    # no DestinationRule and no Service among the files: both may be applied apart (warnings)
    assert result.exit_code == 0, result.output
    assert (
        "Warning [ServiceNotFound]" in result.output
        and "Warning [ReferencedResourceNotFound]" in result.output
    )


def test_analyze_reads_directories_and_filters_by_namespace(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BOOKINFO)
    # in namespace other: a route to a subset its host's DestinationRule lacks (an error)
    extra = EXTRA_VS % {"name": "x", "host": "x", "subset": "v9"}
    rule = "kind: DestinationRule\nmetadata: {name: x}\nspec: {host: x, subsets: [{name: v1}]}\n"
    both = f"{extra}---\napiVersion: networking.istio.io/v1\n{rule}"
    (tmp_path / "b.yml").write_text(both.replace("name: x}", "name: x, namespace: other}"))
    everything = CliRunner().invoke(main, ["analyze", "-A", "-f", str(tmp_path)])
    assert everything.exit_code == 1 and "other/x" in everything.output
    default_only = CliRunner().invoke(main, ["analyze", "-n", "default", "-f", str(tmp_path)])
    assert default_only.exit_code == 0, default_only.output


def test_json_output_lists_findings(tmp_path: Path) -> None:
    file = tmp_path / "vs.yaml"
    file.write_text(BOOKINFO.replace("weight: 20", "weight: -20"))
    result = CliRunner().invoke(main, ["analyze", "-o", "json", "-f", str(file)])
    assert result.exit_code == 1
    assert '"path": "spec.http[1].route[1].weight"' in result.output


SAMPLE = Path(__file__).parent.parent.parent / "samples" / "bookinfo"


def test_each_bookinfo_sample_routing_file_is_clean() -> None:
    rules = SAMPLE / "networking" / "destination-rule-all.yaml"
    platform = SAMPLE / "platform" / "kube" / "bookinfo.yaml"
    for scenario in sorted((SAMPLE / "networking").glob("virtual-service-*.yaml")):
        result = CliRunner().invoke(
            main, ["analyze", "-f", str(platform), "-f", str(rules), "-f", str(scenario)]
        )
        assert result.exit_code == 0, result.output
        assert "No validation issues found" in result.output, result.output


def test_alternatives_for_one_resource_replace_each_other_with_a_warning() -> None:
    result = CliRunner().invoke(main, ["analyze", "-f", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "Warning [DuplicateResource]" in result.output
    assert "ConflictingVirtualServiceHosts" not in result.output


SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: %(name)s, namespace: default}
spec:
  egress: [{hosts: [%(hosts)s]}]
"""


def test_two_namespace_wide_sidecars_are_an_error_naming_the_one_in_force() -> None:
    text = "---".join(
        [
            BOOKINFO,
            SIDECAR % {"name": "b", "hosts": '"./*"'},
            SIDECAR % {"name": "a", "hosts": '"./*"'},
        ]
    )
    found = [f for f in analyze(parse_yaml(text)) if f.code == "MultipleSidecarsWithoutSelectors"]
    assert [(f.severity, f.resource) for f in found] == [
        (Severity.ERROR, "Sidecar default/b"),
        (Severity.ERROR, "Sidecar default/a"),
    ]
    assert all("takes the first by name (a)" in f.message for f in found)


def test_a_sidecar_host_no_service_matches_is_a_warning() -> None:
    hosts = ", ".join(
        [
            '"default/reviews.default.svc.cluster.local"',
            '"default/details.default.svc.cluster.local"',  # no such Service
            '"istio-system/reviews.default.svc.cluster.local"',  # not in that namespace
            '"./*"',
            '"*/*.example.com"',
        ]
    )
    assert findings(BOOKINFO + "---" + SIDECAR % {"name": "default", "hosts": hosts}) == [
        (Severity.WARNING, "ServiceNotFound", "spec.egress[0].hosts[1]"),
        (Severity.WARNING, "ServiceNotFound", "spec.egress[0].hosts[2]"),
    ]


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (SAMPLE / "networking").glob("*.yaml")), ids=str
)
def test_each_bookinfo_routing_file_alone_is_accepted(name: str) -> None:
    """As Istio's bookinfo is used: each file applied on its own, the subsets elsewhere."""
    result = CliRunner().invoke(main, ["analyze", "-f", str(SAMPLE / "networking" / name)])
    assert result.exit_code == 0, result.output
    assert "Error" not in result.output, result.output


UNSUPPORTED_FEATURES = [
    (
        "gateway-istio-mutual",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: east-west}\n"
        "spec:\n  selector: {istio: eastwestgateway}\n  servers:\n"
        "  - port: {number: 15443, name: tls, protocol: TLS}\n    hosts: ['*.local']\n"
        "    tls: {mode: AUTO_PASSTHROUGH}\n"
        "  - port: {number: 15012, name: tls-istiod, protocol: TLS}\n    hosts: ['*']\n"
        "    tls: {mode: ISTIO_MUTUAL}\n",
        [
            "spec.servers[0].tls.mode: 'AUTO_PASSTHROUGH' is not supported",
            "spec.servers[1].tls.mode: 'ISTIO_MUTUAL' is not supported: istiolite has no mesh mTLS",
        ],
    ),
    (
        "gateway-file-certificates",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: https}\n"
        "spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n"
        "    tls: {mode: SIMPLE, serverCertificate: /etc/certs/tls.crt, "
        "privateKey: /etc/certs/tls.key}\n",
        [
            "spec.servers[0].tls.serverCertificate: not supported: certificates from files",
            "spec.servers[0].tls.privateKey: not supported",
        ],
    ),
    (
        "mutual-tls",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
        "spec:\n  host: reviews\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"
        "  subsets: [{name: v1, labels: {version: v1}}]\n",
        ["spec.trafficPolicy.tls.mode: istiolite does not originate TLS yet"],
    ),
    (
        "service-entry-workload-selector",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: vms}\n"
        "spec:\n  hosts: [vm.example.com]\n  resolution: DYNAMIC_DNS\n"
        "  workloadSelector: {labels: {app: vm}}\n"
        "  ports: [{number: 443, name: https, protocol: HTTPS}]\n",
        [
            "spec.workloadSelector: not supported: selecting Pods or WorkloadEntries",
            "spec.resolution: 'DYNAMIC_DNS' is not supported",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "messages"),
    [u[1:] for u in UNSUPPORTED_FEATURES],
    ids=[u[0] for u in UNSUPPORTED_FEATURES],
)
def test_istio_features_istiolite_lacks_are_refused_naming_the_field(
    tmp_path: Path, text: str, messages: list[str]
) -> None:
    file = tmp_path / "unsupported.yaml"
    file.write_text(text)
    result = CliRunner().invoke(main, ["analyze", "-f", str(file)])
    assert result.exit_code == 1
    for message in messages:
        assert message in result.output, result.output


# --- gateways, their Secrets, and ServiceEntries ------------------------------------------

GATEWAY_FILE = SAMPLE / "networking" / "bookinfo-gateway.yaml"
PLATFORM = SAMPLE / "platform" / "kube" / "bookinfo.yaml"


def test_the_bookinfo_gateway_analyzes_clean_with_the_sample() -> None:
    """Istio's bookinfo-gateway.yaml (the sample's own copy says the same): its Gateway selects
    the ingress gateway istiolite installs, its VirtualService routes to productpage."""
    result = CliRunner().invoke(main, ["analyze", "-f", str(PLATFORM), "-f", str(GATEWAY_FILE)])
    assert result.exit_code == 0, result.output
    assert "No validation issues found" in result.output, result.output


def gateway(
    name: str = "gw", *, selector: str = "{istio: ingressgateway}", servers: str = ""
) -> str:
    servers = servers or "- port: {number: 8080, name: http, protocol: HTTP}\n  hosts: ['*']\n"
    return (
        f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\n"
        f"spec:\n  selector: {selector}\n  servers:\n" + textwrap.indent(servers, "  ")
    )


def bound(gateways: str, *, hosts: str = "['*']", match: str = "") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bookinfo}\n"
        f"spec:\n  hosts: {hosts}\n  gateways: {gateways}\n  http:\n"
        f"  - {match}route: [{{destination: {{host: productpage, port: {{number: 9080}}}}}}]\n"
    )


def gateway_findings(*docs: str) -> list[tuple[Severity, str, str]]:
    return findings("---\n".join([PLATFORM.read_text(), *docs]))


def test_a_virtual_service_bound_to_a_gateway_that_is_not_there_is_a_warning() -> None:
    both = bound("[gw, mesh, istio-system/other]", hosts="[productpage]")
    assert gateway_findings(both, gateway()) == [
        (Severity.WARNING, "ReferencedResourceNotFound", "spec.gateways[2]"),
    ]
    match = "match: [{gateways: [missing]}]\n    "
    assert gateway_findings(bound("[gw]", match=match), gateway()) == [
        (Severity.WARNING, "ReferencedResourceNotFound", "spec.http[0].match[0].gateways[0]"),
    ]
    [missing] = [f for f in analyze(parse_yaml(bound("[nowhere]"))) if "Gateway" in f.message]
    assert "no Gateway default/nowhere among the analyzed resources" in missing.message


def test_a_gateway_that_serves_none_of_the_hosts_is_a_warning() -> None:
    servers = (
        "- port: {number: 8080, name: http, protocol: HTTP}\n  hosts: [other/*, shop.example.com]\n"
    )
    assert gateway_findings(
        bound("[gw]", hosts="[bookinfo.example.com]"), gateway(servers=servers)
    ) == [(Severity.WARNING, "VirtualServiceHostNotFoundInGateway", "spec.gateways[0]")]
    served = servers.replace("shop.example.com", "./*.example.com")
    assert (
        gateway_findings(bound("[gw]", hosts="[bookinfo.example.com]"), gateway(servers=served))
        == []
    )


def test_gateways_merge_virtual_services_for_one_host_rather_than_conflict() -> None:
    other = bound("[gw]").replace("name: bookinfo}", "name: bookinfo-2}")
    assert gateway_findings(bound("[gw]"), other, gateway()) == []


@pytest.mark.parametrize(
    ("workload", "selector"),
    [
        ("", "{istio: ingressgateway}"),  # the one istiolite installs
        ("", "{app: istio-ingressgateway}"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: edge, namespace: edge}\n"
            "spec:\n  template:\n    metadata: {labels: {app: edge, tier: front}}\n",
            "{app: edge}",
        ),
        (
            "apiVersion: v1\nkind: Pod\n"
            "metadata: {name: edge-1, namespace: edge, labels: {app: edge}}\n",
            "{app: edge}",
        ),
    ],
)
def test_a_gateway_selecting_a_workload_is_clean(workload: str, selector: str) -> None:
    assert gateway_findings(workload, gateway(selector=selector), bound("[gw]")) == []


def test_a_gateway_whose_selector_matches_no_workload_is_a_warning() -> None:
    deployment = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: edge}\n"
        "spec:\n  selector: {matchLabels: {app: edge}}\n"  # the selector, not the pods' labels
    )
    [finding] = analyze(parse_yaml(deployment + "---\n" + gateway(selector="{app: edge}")))
    assert (finding.severity, finding.code, finding.path) == (
        Severity.WARNING,
        "ReferencedResourceNotFound",
        "spec.selector",
    )
    assert "has the labels app=edge" in finding.message


def tls_server(mode: str = "SIMPLE") -> str:
    return (
        "- port: {number: 8443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
        f"  tls: {{mode: {mode}, credentialName: bookinfo-cert}}\n"
    )


def credential(
    name: str = "bookinfo-cert", *, namespace: str = "istio-system", ca: bool = False
) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    data = {"tls.crt": cert_pem(key), "tls.key": key_pem(key)}
    if ca:
        data["ca.crt"] = cert_pem(key, name="client-ca")
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": encoded,
        }
    )


def test_a_credential_name_without_its_secret_is_a_warning_naming_where_it_is_read() -> None:
    # Istio's rule: the Secret is in the gateway workload's namespace, not the Gateway's.
    in_default = credential(namespace="default")
    [finding] = analyze(parse_yaml(gateway(servers=tls_server()) + "---\n" + in_default))
    assert (finding.severity, finding.code, finding.path) == (
        Severity.WARNING,
        "ReferencedResourceNotFound",
        "spec.servers[0].tls.credentialName",
    )
    assert "no Secret istio-system/bookinfo-cert" in finding.message
    assert analyze(parse_yaml(gateway(servers=tls_server()) + "---\n" + credential())) == []


def test_a_credential_name_naming_a_secret_without_a_certificate_is_an_error() -> None:
    opaque = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bookinfo-cert, namespace: istio-system}\n"
        "type: Opaque\ndata: {password: aHVudGVyMg==}\n"
    )
    [finding] = analyze(parse_yaml(gateway(servers=tls_server()) + "---\n" + opaque))
    assert (finding.severity, finding.code) == (Severity.ERROR, "InvalidGatewayCredential")


def test_mutual_tls_needs_a_client_ca_in_the_secret_or_beside_it() -> None:
    mutual = gateway(servers=tls_server("MUTUAL"))
    [finding] = analyze(parse_yaml(mutual + "---\n" + credential()))
    assert "MUTUAL TLS needs the CA of client certificates" in finding.message
    assert analyze(parse_yaml(mutual + "---\n" + credential(ca=True))) == []
    beside = credential(ca=True).replace("name: bookinfo-cert", "name: bookinfo-cert-cacert")
    assert analyze(parse_yaml("---\n".join([mutual, credential(), beside]))) == []


ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com, '*.api.example.com']
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: 198.51.100.7}]
"""


ENTRY_ROUTES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin.example.com]
  http:
  - route: [{destination: {host: httpbin.example.com, port: {number: 80}}}]
    retries: {attempts: 3}
  - route: [{destination: {host: v2.api.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec: {host: httpbin.example.com, trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{hosts: [default/httpbin.example.com, istio-system/httpbin.example.com]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


def test_routes_and_rules_for_service_entry_hosts_find_them() -> None:
    routes = ENTRY_ROUTES
    assert findings(ENTRY + "---\n" + routes) == [
        (Severity.WARNING, "ServiceNotFound", "spec.egress[0].hosts[1]")  # not in istio-system
    ]
    wrong_port = routes.replace("port: {number: 80}", "port: {number: 443}")
    [finding] = [
        f for f in analyze(parse_yaml(ENTRY + "---\n" + wrong_port)) if f.severity == Severity.ERROR
    ]
    assert finding.message == "ServiceEntry default/httpbin has no port 443; it has 80"
