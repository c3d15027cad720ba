"""The control plane as Kubernetes objects: values and webhook certificates in, dicts out.

Names are Istio's (`istio-system`, `istiod`, `istio-sidecar-injector`), so `kubectl` habits,
dashboards and runbooks written for Istio find the same objects here.

The ClusterRole grants exactly what pilot-discovery does with the API (see the docstring of
`istiolite.discovery.kube.registry`): list and watch what it translates, and create Events about
objects it refuses. The webhook reads nothing from the API, so it adds nothing; the Secret it
serves from is mounted by the kubelet. Secrets are read in `istio-system` only, through a Role:
that is where the ingress gateway runs, and where its `credentialName` Secrets live (Istio's
rule: the gateway workload's namespace); pilot-discovery serves them to the gateway over SDS.

The ingress gateway (`istio-system/istio-ingressgateway`, istiolite/ingress.py) is the proxy
image in router mode: Envoy binds the ports of the Gateways that select it; nothing is
captured, so it has no init container and no capabilities. Its pod gets no service account
token: it talks to pilot-discovery only, and reads no Secret itself.

The pod runs as Kubernetes' "restricted" Pod Security Standard asks: non-root (uid 1337,
Istio's), no privilege escalation, every capability dropped, read-only root filesystem and the
runtime's default seccomp profile.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import yaml

from istiolite import ingress
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

# (API group, resources, verbs): pilot-discovery's whole use of the Kubernetes API, everywhere.
RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("", ("namespaces", "nodes", "pods", "services"), ("list", "watch")),
    ("discovery.k8s.io", ("endpointslices",), ("list", "watch")),
    (
        "networking.istio.io",
        ("destinationrules", "gateways", "serviceentries", "sidecars", "virtualservices"),
        ("list", "watch"),
    ),
    ("", ("events",), ("create",)),
)
# ... and in istio-system only: the gateway's TLS credentials, which it serves over SDS.
NAMESPACE_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("", ("secrets",), ("get", "list", "watch")),
)
# Where install records the values verify-install must know (what it should find).
INGRESS_ANNOTATION = "install.istiolite.io/ingress-gateway"
GATEWAY_ACCOUNT = f"{ingress.NAME}-service-account"  # Istio's name for it

# (name, Service port, container port)
PORTS = (
    ("grpc-xds", 15010, 15010),
    ("http-monitoring", 15014, 15014),
    ("https-webhook", 443, 15017),
    ("http-debug", 8080, 8080),
)


def render(values: Values, webhook_certs: WebhookCerts) -> list[Json]:
    """Every object of the control plane, in the order they can be applied."""
    gateway = (
        [gateway_service_account(), gateway_deployment(values), gateway_service()]
        if values.ingress_gateway
        else []
    )
    return [
        namespace(),
        *copy.deepcopy(_shipped_crds()),
        service_account(),
        cluster_role(),
        cluster_role_binding(),
        role(),
        role_binding(),
        secret(webhook_certs),
        deployment(values),
        service(),
        *gateway,
        mutating_webhook(webhook_certs),
    ]


@functools.cache
def _shipped_crds() -> list[Json]:
    # Parsed once: the schemas make crds.yaml slow to read (~0.3 s); renders should not pay it.
    return crds.load()


def to_yaml(objects: list[Json]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, width=100)


def _meta(name: str, *, namespaced: bool = True, **labels: str) -> Json:
    """Metadata in istio-system (or cluster-wide) with these labels and the part-of label."""
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


def role() -> Json:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(NAME, app=NAME),
        "rules": [
            {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
            for group, resources, verbs in NAMESPACE_RULES
        ],
    }


def role_binding() -> Json:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(NAME, app=NAME),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
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
    meta = _meta(NAME, app=NAME, istio="pilot")
    # What verify-install should find: the gateway, or not (install's values are not stored).
    meta["annotations"] = {INGRESS_ANNOTATION: str(values.ingress_gateway).lower()}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
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


def _gateway_meta(name: str) -> Json:
    return {"name": name, "namespace": ingress.NAMESPACE, "labels": {**ingress.LABELS, **PART_OF}}


def gateway_service_account() -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _gateway_meta(GATEWAY_ACCOUNT),
        # The gateway reads nothing from the API: no token in its pods.
        "automountServiceAccountToken": False,
    }


def gateway_deployment(values: Values) -> Json:
    """`pilot-agent proxy router` in the proxy image, as Istio's ingress gateway."""
    selector = dict(ingress.LABELS)
    pod_labels = {**selector, "sidecar.istio.io/inject": "false", **PART_OF}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _gateway_meta(ingress.NAME),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": GATEWAY_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": PROXY_UID,
                        "runAsGroup": PROXY_UID,
                        "fsGroup": PROXY_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_gateway_container(values)],
                    "volumes": [
                        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
                        {"name": "istio-data", "emptyDir": {}},
                        {
                            "name": "istio-podinfo",
                            "downwardAPI": {
                                "items": [
                                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                                ]
                            },
                        },
                    ],
                },
            },
        },
    }


def _gateway_container(values: Values) -> Json:
    env = [
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("INSTANCE_IP", "status.podIP"),
        _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
    ]
    ports = [
        {"name": name, "containerPort": target, "protocol": "TCP"}
        for name, _, target, _ in (ingress.HTTP, ingress.HTTPS, ingress.STATUS)
    ]
    ports.append({"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"})
    return {
        "name": "istio-proxy",
        "image": values.proxy,
        "imagePullPolicy": values.image_pull_policy,
        # The image's entrypoint is pilot-agent, as Istio's proxy image's.
        "args": ["proxy", "router", "--discovery-address", DISCOVERY_ADDRESS],
        "env": env,
        "ports": ports,
        # Istio's: Envoy's health listener, answered by the agent (LIVE, config applied).
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": ingress.STATUS[2]},
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 30,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
    }


def _field_env(name: str, field_path: str) -> Json:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def gateway_service() -> Json:
    """LoadBalancer, as Istio's; the fixed NodePorts let a kind cluster map them to the host."""
    ports = []
    for name, port, target, node_port in (ingress.STATUS, ingress.HTTP, ingress.HTTPS):
        entry: Json = {"name": name, "port": port, "targetPort": target, "protocol": "TCP"}
        if node_port is not None:
            entry["nodePort"] = node_port
        ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _gateway_meta(ingress.NAME),
        "spec": {"type": "LoadBalancer", "selector": dict(ingress.LABELS), "ports": ports},
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
    """Every object install may create, in apply order: what uninstall deletes."""
    return expected(gateway=True)


@functools.cache
def expected(*, gateway: bool) -> tuple[Ref, ...]:
    """The objects install creates with the ingress gateway enabled or not, in apply order."""
    placeholder = WebhookCerts(b"", b"", b"", b"")
    values = dataclasses.replace(Values(), ingress_gateway=gateway)
    return tuple(ref(obj) for obj in render(values, placeholder))


def selector_of(deployment: Ref) -> dict[str, str]:
    """The pod labels of one of the installed Deployments."""
    return dict(ingress.LABELS) if deployment == GATEWAY_DEPLOYMENT else dict(SELECTOR)


ISTIOD_DEPLOYMENT = Ref("apps/v1", "Deployment", NAME, NAMESPACE)
GATEWAY_DEPLOYMENT = Ref("apps/v1", "Deployment", ingress.NAME, ingress.NAMESPACE)
