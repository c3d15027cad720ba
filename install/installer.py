"""install, uninstall and verify-install: the steps, in order, over a `Cluster`.

Install applies the Namespace and the CRDs first and waits until the CRDs are Established:
nothing later depends on them today, but an object of a kind that is not served yet would fail,
and a user's VirtualServices applied right after `install` must find their kind. Then the rest,
the webhook configuration last, so it never calls an istiod that is not there yet.

With `gateways.ingress.enabled=false` the ingress gateway is left out, and removed if an earlier
install made it: what install leaves is what the values say, as Istio's installer prunes a
component turned off.

Uninstall goes the other way round: the webhook first, so that no pod creation waits on (and,
with failurePolicy Fail, is refused by) an istiod that is being deleted. It leaves two things:
- the CRDs, unless `purge`: deleting a CRD deletes every VirtualService, DestinationRule,
  Sidecar, Gateway and ServiceEntry in the cluster, which is the users' configuration, not the
  installer's;
- the `istio-system` Namespace, as `istioctl uninstall` does: it may hold things users put
  there, and `kubectl delete namespace istio-system` is one command away.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from istiolite.install import manifests, status, webhookcerts
from istiolite.install.cluster import Cluster
from istiolite.install.values import Values

Echo = Callable[[str], None]
_FIRST = ("Namespace", "CustomResourceDefinition")


def install(
    cluster: Cluster,
    values: Values,
    *,
    now: datetime,
    echo: Echo,
    force: bool = False,
    wait: timedelta | None = None,
) -> None:
    decision = webhookcerts.reconcile(cluster.secret_data(), now=now)
    echo(f"webhook certificate: {decision.action}")
    objects = manifests.render(values, decision.certs)
    first = [o for o in objects if o["kind"] in _FIRST]
    for obj in first:
        _apply(cluster, obj, force=force, echo=echo)
    for obj in first:
        if obj["kind"] == "CustomResourceDefinition":
            cluster.wait_established(manifests.ref(obj))
    for obj in objects:
        if obj["kind"] not in _FIRST:
            _apply(cluster, obj, force=force, echo=echo)
    applied = {manifests.ref(o) for o in objects}
    for ref in reversed(manifests.inventory()):
        if ref not in applied and cluster.get(ref) is not None:
            cluster.delete(ref)
            echo(f"{_name(ref.kind, ref.name)} deleted (gateways.ingress.enabled=false)")
    if wait is not None:
        for ref in (manifests.ISTIOD_DEPLOYMENT, manifests.GATEWAY_DEPLOYMENT):
            if ref in applied:
                cluster.wait_rolled_out(ref, timeout=wait)
                echo(f"{ref.namespace}/{ref.name} is available")


def uninstall(cluster: Cluster, *, echo: Echo, purge: bool = False) -> None:
    kept = ("Namespace",) if purge else _FIRST
    for ref in reversed(manifests.inventory()):
        if ref.kind in kept:
            continue
        deleted = cluster.delete(ref)
        echo(f"{_name(ref.kind, ref.name)} {'deleted' if deleted else 'not found'}")


def verify(cluster: Cluster, *, now: datetime) -> list[status.Check]:
    live = {ref: cluster.get(ref) for ref in manifests.inventory()}
    return status.verify(live, now=now)


def _apply(cluster: Cluster, obj: manifests.Json, *, force: bool, echo: Echo) -> None:
    result = cluster.apply(obj, force=force)
    echo(f"{_name(obj['kind'], obj['metadata']['name'])} {result}")


def _name(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"  # kubectl's spelling, as `kubectl apply` prints it
