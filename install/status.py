"""Reading the installed control plane: is each object there and healthy, and if not, why.

Pure functions over the objects as the API server returns them (plain dicts), shared by
`install --wait` and `verify-install`; the cluster module only fetches.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from istiolite.install import manifests, webhookcerts
from istiolite.install.manifests import Json, Ref


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    problem: str | None = None  # None: passed

    def line(self) -> str:
        return (
            f"ok    {self.what}" if self.problem is None else f"FAIL  {self.what}: {self.problem}"
        )


def established(crd: Json) -> str | None:
    """Why the CRD's kinds are not served yet; None once it is Established."""
    for c in (crd.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Established":
            if c.get("status") == "True":
                return None
            return f"not Established: {c.get('reason')}: {c.get('message')}"
    return "not Established yet"


def rollout(deployment: Json) -> str | None:
    """Why the Deployment's rollout is not complete; None once every replica is updated and
    available. The same test as `kubectl rollout status`, so a re-install with a new image
    waits for the new pods, not for the old ones that are still available."""
    want = (deployment.get("spec") or {}).get("replicas", 1)
    status = deployment.get("status") or {}
    generation = deployment.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return "the deployment controller has not acted on the latest spec yet"
    progressing = _conditions(deployment).get("Progressing", {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return f"rollout stuck: {progressing.get('message')}"
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return f"{updated} of {want} replicas updated"
    if (old := status.get("replicas", 0) - updated) > 0:
        return f"{old} old replicas still running"
    if (available := status.get("availableReplicas", 0)) < updated:
        return f"{available} of {updated} updated replicas available"
    return None


def conditions(deployment: Json) -> list[str]:
    """The Deployment's conditions, one line each, for a message about why it is not ready."""
    return [
        f"{c['type']}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
        for c in _conditions(deployment).values()
    ]


def pod_problems(pods: list[Json], *, name: str = manifests.NAME) -> list[str]:
    """What keeps each pod from being ready: scheduling, image pulls, crashes, readiness."""
    if not pods:
        return [f"no {name} pods exist"]
    return [line for pod in pods for line in _pod_problems(pod)]


def _pod_problems(pod: Json) -> list[str]:
    name = f"pod {pod['metadata']['name']}"
    status = pod.get("status") or {}
    lines = [
        f"{name}: not scheduled: {c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    ]
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    lines += [f"{name}: {problem}" for cs in statuses for problem in _container_problems(cs)]
    if not statuses and not lines:
        lines.append(f"{name}: {status.get('phase', 'Pending')}, no container started")
    return lines


def _container_problems(cs: Json) -> list[str]:
    name, state = cs.get("name"), cs.get("state") or {}
    if waiting := state.get("waiting"):
        detail = f" ({waiting['message']})" if waiting.get("message") else ""
        return [f"container {name} waiting: {waiting.get('reason')}{detail}"]
    if (done := state.get("terminated")) and done.get("exitCode", 0) != 0:
        return [f"container {name} exited {done.get('exitCode')}: {done.get('reason')}"]
    if "running" in state and not cs.get("ready"):
        return [f"container {name} running, not ready (its readiness probe fails)"]
    return []


def verify(live: Mapping[Ref, Json | None], *, now: datetime) -> list[Check]:
    """One check per object install made, then whether the webhook trusts istiod's certificate.

    The ingress gateway's objects are checked when install ran it (istiod's Deployment says so):
    with `gateways.ingress.enabled=false` they are rightly absent.
    """
    expected = manifests.expected(gateway=_gateway_installed(live))
    checks = [Check(str(r), _object_problem(r, live.get(r))) for r in expected]
    checks.append(Check("webhook caBundle verifies istiod's serving certificate", _tls(live, now)))
    return checks


def _gateway_installed(live: Mapping[Ref, Json | None]) -> bool:
    istiod = live.get(manifests.ISTIOD_DEPLOYMENT) or {}
    annotations = (istiod.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(manifests.INGRESS_ANNOTATION, "true") != "false")


def _object_problem(r: Ref, obj: Json | None) -> str | None:
    if obj is None:
        return "not found"
    if r.kind == "CustomResourceDefinition":
        return established(obj)
    if r.kind == "ClusterRole" and _rules(obj) != _rules(manifests.cluster_role()):
        return "rules differ from what istiolite install applies"
    if r.kind == "Role" and _rules(obj) != _rules(manifests.role()):
        return "rules differ from what istiolite install applies"
    if r == manifests.ref(manifests.gateway_service()):
        return _gateway_service_problem(obj)
    if r.kind == "Deployment":
        return rollout(obj)
    if r.kind == "MutatingWebhookConfiguration":
        want = manifests.mutating_webhook(_NO_CERTS)["webhooks"][0]["clientConfig"]["service"]
        got = [w.get("clientConfig", {}).get("service") for w in obj.get("webhooks") or []]
        if got != [want]:
            return f"does not call {want['name']}.{want['namespace']}:{want['port']}{want['path']}"
    return None


def _tls(live: Mapping[Ref, Json | None], now: datetime) -> str | None:
    [secret] = [o for r, o in live.items() if r.kind == "Secret"] or [None]
    [hook] = [o for r, o in live.items() if r.kind == "MutatingWebhookConfiguration"] or [None]
    if secret is None or hook is None:
        return "the Secret or the webhook configuration is missing"
    try:
        cert = base64.b64decode((secret.get("data") or {})[webhookcerts.TLS_CERT])
        bundle = base64.b64decode(hook["webhooks"][0]["clientConfig"]["caBundle"])
    except (KeyError, IndexError, ValueError) as e:
        return f"no certificate or caBundle: {e}"
    return webhookcerts.verify(bundle, cert, now=now)


_NO_CERTS = webhookcerts.WebhookCerts(b"", b"", b"", b"")


def _gateway_service_problem(service: Json) -> str | None:
    """The ports users and kind's port mappings rely on: Istio's, with the fixed NodePorts."""
    got = _ports(service)
    missing = [
        want
        for want in _ports(manifests.gateway_service())
        if not any(
            (p.get("port"), p.get("targetPort")) == (want["port"], want["targetPort"])
            and p.get("nodePort") == want.get("nodePort", p.get("nodePort"))
            for p in got
        )
    ]
    if not missing:
        return None
    shown = ", ".join(
        f"{p['port']}->{p['targetPort']}"
        + (f" (NodePort {p['nodePort']})" if "nodePort" in p else "")
        for p in missing
    )
    return f"does not expose {shown}"


def _ports(service: Json) -> list[Json]:
    return list((service.get("spec") or {}).get("ports") or [])


def _rules(role: Json) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role.get("rules") or []
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def _conditions(deployment: Json) -> dict[str, Any]:
    return {c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []}
