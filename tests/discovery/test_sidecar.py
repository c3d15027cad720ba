"""Which Sidecar scopes a proxy, and which services its egress hosts select (Istio's rules)."""

from __future__ import annotations

import pytest

from istiolite.api import Sidecar, parse_yaml
from istiolite.api.decode import FrozenDict
from istiolite.api.networking import OutboundMode
from istiolite.discovery.model import MeshService, Proxy, build_snapshot, egress_selects


def sidecar(name: str, namespace: str, *, selector: str = "", mode: str = "") -> str:
    spec = []
    if selector:
        key, _, value = selector.partition("=")
        spec.append(f"  workloadSelector: {{labels: {{{key}: {value}}}}}")
    spec.append('  egress: [{hosts: ["./*"]}]')
    if mode:
        spec.append(f"  outboundTrafficPolicy: {{mode: {mode}}}")
    return (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n" + "\n".join(spec) + "\n"
    )


def chosen(
    docs: list[str], namespace: str, root: str = "istio-system", **labels: str
) -> str | None:
    resources = [p.resource for p in parse_yaml("---\n".join(docs)) if p.resource]
    snapshot = build_snapshot(resources, root_namespace=root)
    proxy = Proxy.from_node(
        f"sidecar~10.1.0.1~p.{namespace}~{namespace}.svc.cluster.local",
        {"NAMESPACE": namespace, "LABELS": labels},
    )
    found = snapshot.sidecar(proxy)
    assert found is None or isinstance(found, Sidecar)
    return f"{found.meta.namespace}/{found.meta.name}" if found else None


ROOT = sidecar("default", "istio-system")
NAMESPACE = sidecar("default", "shop")
SELECTING = sidecar("cart", "shop", selector="app=cart")


@pytest.mark.parametrize(
    ("docs", "namespace", "labels", "expected"),
    [
        ([], "shop", {}, None),
        ([ROOT], "shop", {}, "istio-system/default"),
        ([ROOT, NAMESPACE], "shop", {}, "shop/default"),
        ([ROOT, NAMESPACE, SELECTING], "shop", {"app": "cart"}, "shop/cart"),
        ([ROOT, NAMESPACE, SELECTING], "shop", {"app": "web"}, "shop/default"),
        ([ROOT, SELECTING], "shop", {"app": "web"}, "istio-system/default"),
        ([NAMESPACE, SELECTING], "other", {"app": "cart"}, None),
        # A selector in the root namespace selects there only; it is no mesh-wide default.
        ([sidecar("x", "istio-system", selector="app=cart")], "shop", {"app": "cart"}, None),
        # Two without selector in one namespace: the first by name, every time.
        ([sidecar("b", "shop"), sidecar("a", "shop")], "shop", {}, "shop/a"),
    ],
)
def test_which_sidecar_applies(
    docs: list[str], namespace: str, labels: dict[str, str], expected: str | None
) -> None:
    assert chosen(docs, namespace, **labels) == expected


def service(name: str, namespace: str) -> MeshService:
    return MeshService(
        hostname=f"{name}.{namespace}.svc.cluster.local",
        name=name,
        namespace=namespace,
        cluster_ip=None,
        ports=(),
        selector=FrozenDict(),
        endpoints=FrozenDict(),
    )


@pytest.mark.parametrize(
    ("hosts", "selected"),
    [
        (["*/*"], True),
        (["./*"], True),  # `.` is the proxy's namespace, shop
        (["./*"], True),
        (["~/*"], False),
        (["prod/*"], False),
        (["shop/*"], True),
        (["*/reviews.shop.svc.cluster.local"], True),
        (["*/reviews"], False),  # a full host name, not a short one
        (["*/*.shop.svc.cluster.local"], True),
        (["*/*.prod.svc.cluster.local"], False),
        (["prod/*", "./reviews.shop.svc.cluster.local"], True),
        # `~` excludes, whatever else selects the service (Istio's semantics)
        (["*/*", "~shop/*"], False),
        (["*/*", "~prod/*"], True),
        (["*/*", "~/reviews.shop.svc.cluster.local"], False),
        (["*/*", "~*/reviews.prod.svc.cluster.local"], True),
        (["./*", "~./*.shop.svc.cluster.local"], False),
        (["~shop/ratings.shop.svc.cluster.local", "shop/*"], True),
        (["~/reviews.shop.svc.cluster.local"], False),  # excluding alone selects nothing
    ],
)
def test_egress_hosts_select_services(hosts: list[str], selected: bool) -> None:
    assert egress_selects(hosts, "shop", service("reviews", "shop")) is selected


def test_the_root_namespace_is_a_setting() -> None:
    """PILOT_ROOT_NAMESPACE / --root-namespace: another namespace holds the mesh-wide default."""
    docs = [ROOT, sidecar("default", "mesh-config")]
    assert chosen(docs, "shop", root="mesh-config") == "mesh-config/default"
    assert chosen(docs, "shop") == "istio-system/default"


def test_outbound_mode_comes_from_the_sidecar() -> None:
    docs = [sidecar("default", "shop", mode="REGISTRY_ONLY")]
    snapshot = build_snapshot([p.resource for p in parse_yaml("---\n".join(docs)) if p.resource])
    inside = Proxy.from_node("sidecar~10.1.0.1~p.shop~shop.svc.cluster.local", {})
    outside = Proxy.from_node("sidecar~10.1.0.2~p.web~web.svc.cluster.local", {})
    assert snapshot.outbound_mode(inside) is OutboundMode.REGISTRY_ONLY
    assert snapshot.outbound_mode(outside) is OutboundMode.ALLOW_ANY
