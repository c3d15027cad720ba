"""Host names as Istio resolves them."""

from __future__ import annotations

DEFAULT_DOMAIN_SUFFIX = "cluster.local"


def resolve_host(host: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """Expand a short name the way Istio does: only a name without any dot is expanded.

    `reviews` in namespace `default` becomes `reviews.default.svc.cluster.local`; `reviews.default`
    is taken literally (Istio does the same, which is why it recommends full names).
    """
    if "." in host or ":" in host or host == "*":
        return host
    return f"{host}.{namespace}.svc.{domain_suffix}"
