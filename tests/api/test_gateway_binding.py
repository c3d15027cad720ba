"""What the model hands to translation about gateways and ServiceEntries: names resolved once,
at the edge, the way Istio resolves them, so nothing further in re-derives them."""

from __future__ import annotations

import textwrap

import pytest

from istiolite.api import Gateway, ServiceEntry, VirtualService, parse_yaml, resolve_gateway
from istiolite.api.gateway import PortProtocol, ServerTLSMode, split_gateway_host
from istiolite.api.resources import Protocol, ServicePort


def one(kind: str, spec: str, *, namespace: str = "bookinfo") -> object:
    text = (
        f"apiVersion: networking.istio.io/v1beta1\nkind: {kind}\n"
        f"metadata: {{name: x, namespace: {namespace}}}\nspec:\n" + textwrap.indent(spec, "  ")
    )
    [item] = parse_yaml(text)
    assert item.error is None, str(item.error)
    return item.resource


@pytest.mark.parametrize(
    ("written", "resolved"),
    [
        ("mesh", "mesh"),
        ("bookinfo-gateway", "bookinfo/bookinfo-gateway"),
        ("istio-system/ingress", "istio-system/ingress"),
        ("ingress.istio-system", "istio-system/ingress"),  # Istio's legacy form
        ("ingress.istio-system.svc.cluster.local", "istio-system/ingress"),
    ],
)
def test_gateway_names_resolve_as_istio_resolves_them(written: str, resolved: str) -> None:
    assert resolve_gateway(written, "bookinfo") == resolved
    vs = one(
        "VirtualService",
        f"hosts: [reviews]\ngateways: [{written}]\nhttp:\n"
        f"- match: [{{gateways: [{written}]}}]\n  route: [{{destination: {{host: reviews}}}}]\n",
    )
    assert isinstance(vs, VirtualService)
    assert vs.spec.gateways == (resolved,)
    assert vs.spec.http[0].match[0].gateways == (resolved,)


def test_a_virtual_service_says_where_it_applies() -> None:
    route = "http:\n- route: [{destination: {host: reviews}}]\n"
    mesh_only = one("VirtualService", "hosts: [reviews]\n" + route)
    both = one("VirtualService", "hosts: [reviews]\ngateways: [gw, mesh]\n" + route)
    gateway_only = one("VirtualService", "hosts: ['*']\ngateways: [istio-system/gw]\n" + route)
    assert isinstance(mesh_only, VirtualService)
    assert isinstance(both, VirtualService)
    assert isinstance(gateway_only, VirtualService)
    assert (mesh_only.mesh, mesh_only.gateways) == (True, ())
    assert (both.mesh, both.gateways) == (True, ("bookinfo/gw",))
    assert (gateway_only.mesh, gateway_only.gateways) == (False, ("istio-system/gw",))
    assert both.binds("mesh") and both.binds("bookinfo/gw") and not both.binds("other/gw")
    assert not gateway_only.binds("mesh") and gateway_only.binds("istio-system/gw")


def test_tls_and_tcp_matches_resolve_their_gateways_too() -> None:
    vs = one(
        "VirtualService",
        "hosts: ['*.example.com']\ngateways: [gw]\n"
        "tls:\n- match: [{sniHosts: [a.example.com], gateways: [gw]}]\n"
        "  route: [{destination: {host: a.example.com}}]\n"
        "tcp:\n- match: [{port: 31400, gateways: [gw]}]\n"
        "  route: [{destination: {host: a.example.com}}]\n",
    )
    assert isinstance(vs, VirtualService)
    assert vs.spec.tls[0].match[0].gateways == ("bookinfo/gw",)
    assert vs.spec.tcp[0].match[0].gateways == ("bookinfo/gw",)


def test_a_gateway_gives_its_servers_typed() -> None:
    gateway = one(
        "Gateway",
        "selector: {istio: ingressgateway}\nservers:\n"
        "- port: {number: 8443, name: https, protocol: https}\n"
        "  hosts: [./bookinfo.example.com, 'istio-system/*', '*.example.org']\n"
        "  tls: {mode: SIMPLE, credentialName: bookinfo-cert}\n"
        "- port: {number: 8080, name: http, protocol: HTTP}\n"
        "  hosts: ['*']\n  tls: {httpsRedirect: true}\n",
    )
    assert isinstance(gateway, Gateway)
    assert gateway.ref == "bookinfo/x"
    https, http = gateway.spec.servers
    assert https.port.protocol is PortProtocol.HTTPS and https.port.protocol.is_tls
    assert https.tls is not None and https.tls.mode is ServerTLSMode.SIMPLE
    assert https.tls.credential_name == "bookinfo-cert"
    assert [split_gateway_host(h, "bookinfo") for h in https.hosts] == [
        ("bookinfo", "bookinfo.example.com"),
        ("istio-system", "*"),
        ("*", "*.example.org"),
    ]
    assert http.tls is not None and http.tls.https_redirect
    assert http.tls.mode is ServerTLSMode.PASSTHROUGH
    assert gateway.spec.servers_on(8080) == (http,)


def test_a_service_entry_gives_its_ports_as_a_services() -> None:
    entry = one(
        "ServiceEntry",
        "hosts: [httpbin.example.com]\nresolution: DNS\nports:\n"
        "- {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n"
        "- {number: 5432, name: db, targetPort: 0}\n",
    )
    assert isinstance(entry, ServiceEntry)
    assert entry.service_ports() == (
        ServicePort(name="http", port=80, target_port=8080, protocol=Protocol.HTTP),
        ServicePort(name="db", port=5432, target_port=None, protocol=Protocol.TCP),
    )
