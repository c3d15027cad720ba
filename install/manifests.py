"""The control plane as Kubernetes objects: values and webhook certificates in, dicts out.

Names are Istio's (`istio-system`, `istiod`, `istio-sidecar-injector`), so `kubectl` habits,
dashboards and runbooks written for Istio find the same objects here.

The ClusterRole grants exactly what pilot-discovery does with the API (see the docstring of
`istiolite.discovery.kube.registry`): list and watch what it translates, and create Events about
objects it refuses. The webhook reads nothing from the API, so it adds nothing; the Secret it
serves from is mounted by the kubelet, so istiod cannot read Secrets at all.

The pod runs as Kubernetes' "restricted" Pod Security Standard asks: non-root (uid 1337,
Istio's), no privilege escalation, every capability dropped, read-only root filesystem and the
runtime's default seccomp profile.
"""

from __future__ import annotations

import base64
import copy
import functools
from dataclasses import dataclass
from typing import Any

import yaml

from istiolite.install import crds
from istiolite.install.values import Values
from istiolite.install.webhookcerts import TLS_CERT, TLS_KEY, WebhookCerts

Json = dict[str, Any]

NAMESPACE = "istio-system"
NAME = "istiod"  # ServiceAccount, ClusterRole(Binding), Deployment and Service
SECRET = "istiod-webhook-certs"
WEBHOOK = "istio-sidecar-injector"
CONTAINER = "discovery"
DISCOVERY_ADDRESS = f"{NAME}.{NAMESPACE}.svc:15010"
PART_OF = {"app.kubernetes.io/part-of": "istiolite"}
SELECTOR = {"app": NAME}
PROXY_UID = 1337
CERT_DIR = "/etc/istiod/webhook"

# (API group, resources, verbs): pilot-discovery's whole use of the Kubernetes API.
RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("", ("namespaces", "nodes", "pods", "services"), ("list", "watch")),
    ("discovery.k8s.io", ("endpointslices",), ("list", "watch")),
    ("networking.istio.io", ("destinationrules", "sidecars", "virtualservices"), ("list", "watch")),
    ("", ("events",), ("create",)),
)

# (name, Service port, container port)
PORTS = (
    ("grpc-xds", 15010, 15010),
    ("http-monitoring", 15014, 15014),
    ("https-webhook", 443, 15017),
    ("http-debug", 8080, 8080),
)


def render(values: Values, webhook_certs: WebhookCerts) -> list[Json]:
    """Every object of the control plane, in the order they can be applied."""
    return [
        namespace(),
        *copy.deepcopy(_shipped_crds()),
        service_account(),
        cluster_role(),
        cluster_role_binding(),
        secret(webhook_certs),
        deployment(values),
        service(),
        mutating_webhook(webhook_certs),
    ]


@functools.cache
def _shipped_crds() -> list[Json]:
    # Parsed once: the schemas make crds.yaml slow to read (~0.3 s); renders should not pay it.
    return crds.load()


def to_yaml(objects: list[Json]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, width=100)


def _meta(name: str, *, namespaced: bool = True, **labels: str) -> Json:
    meta: Json = {"name": name}
    if namespaced:
        meta["namespace"] = NAMESPACE
    meta["labels"] = {**labels, **PART_OF}
    return meta


def namespace() -> Json:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, namespaced=False)}


def service_account() -> Json:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, app=NAME)}


def cluster_role() -> Json:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(NAME, namespaced=False, app=NAME),
        "rules": [
            {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
            for group, resources, verbs in RULES
        ],
    }


def cluster_role_binding() -> Json:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(NAME, namespaced=False, app=NAME),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def secret(webhook_certs: WebhookCerts) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(SECRET, app=NAME),
        "type": "kubernetes.io/tls",
        "data": {k: _b64(v) for k, v in webhook_certs.secret_data().items()},
    }


def deployment(values: Values) -> Json:
    labels = {**SELECTOR, "istio": "pilot"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, app=NAME, istio="pilot"),
        "spec": {
            "replicas": values.replicas,
            "selector": {"matchLabels": SELECTOR},
            "template": {
                # The label keeps istiod out of its own webhook, whatever its namespace's labels.
                "metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false", **PART_OF}},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": PROXY_UID,
                        "runAsGroup": PROXY_UID,
                        "fsGroup": PROXY_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_container(values)],
                    "volumes": [{"name": "webhook-certs", "secret": {"secretName": SECRET}}],
                },
            },
        },
    }


def _container(values: Values) -> Json:
    env = {
        "PILOT_WEBHOOK_CERT": f"{CERT_DIR}/{TLS_CERT}",
        "PILOT_WEBHOOK_KEY": f"{CERT_DIR}/{TLS_KEY}",
        "PILOT_PROXY_IMAGE": values.proxy,
        "PILOT_PROXY_IMAGE_PULL_POLICY": values.image_pull_policy,
        "PILOT_SIDECAR_DISCOVERY_ADDRESS": DISCOVERY_ADDRESS,
        "PILOT_NATIVE_SIDECAR": str(values.native_sidecar).lower(),
        "PILOT_LOG_LEVEL": values.log_level,
    }
    limits = {"cpu": values.cpu_limit, "memory": values.memory_limit}
    return {
        "name": CONTAINER,
        "image": values.pilot,
        "imagePullPolicy": values.image_pull_policy,
        # Neither --kubeconfig nor --config-dir: pilot-discovery uses the in-cluster identity.
        "command": ["pilot-discovery", "discovery"],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [
            {"name": name, "containerPort": target, "protocol": "TCP"} for name, _, target in PORTS
        ],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": 8080},
            "periodSeconds": 3,
            "timeoutSeconds": 5,
        },
        "resources": {
            "requests": {"cpu": values.cpu_request, "memory": values.memory_request},
            **({"limits": {k: v for k, v in limits.items() if v}} if any(limits.values()) else {}),
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "webhook-certs", "mountPath": CERT_DIR, "readOnly": True}],
    }


def service() -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(NAME, app=NAME, istio="pilot"),
        "spec": {
            "selector": SELECTOR,
            "ports": [
                {"name": name, "port": port, "targetPort": target, "protocol": "TCP"}
                for name, port, target in PORTS
            ],
        },
    }


def mutating_webhook(webhook_certs: WebhookCerts) -> Json:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _meta(WEBHOOK, namespaced=False, app="sidecar-injector"),
        "webhooks": [
            {
                "name": "sidecar-injector.istio.io",
                "clientConfig": {
                    "service": {
                        "name": NAME,
                        "namespace": NAMESPACE,
                        "path": "/inject",
                        "port": 443,
                    },
                    "caBundle": _b64(webhook_certs.ca_cert),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
                "objectSelector": {
                    "matchExpressions": [
                        {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
                    ]
                },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                # Fail, not Ignore: a pod admitted without its sidecar escapes the mesh silently.
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
            }
        ],
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class Ref:
    """Where one object lives: enough to get or delete it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def ref(obj: Json) -> Ref:
    meta = obj["metadata"]
    return Ref(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


@functools.cache
def inventory() -> tuple[Ref, ...]:
    """Every object install creates, in apply order; the same list whatever the values."""
    placeholder = WebhookCerts(b"", b"", b"", b"")
    return tuple(ref(obj) for obj in render(Values(), placeholder))
