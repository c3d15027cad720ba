"""Envoy's bootstrap, rendered as a pure function of the settings and the pod's identity.

The bootstrap holds only what Envoy needs before it can talk to pilot-discovery: who it is
(node id and metadata, which discovery uses to find the workload), where ADS is, its admin
port, and two static listeners that must work even without any pushed config — 15090 for
Prometheus (served from admin stats) and 15021 for kubelet readiness (answered by the agent).
Everything else arrives over ADS.

A sidecar and a gateway (Istio's `router`) get the same bootstrap but for the node id's type,
which tells discovery what to send: a sidecar's capture listeners, or listeners that bind the
gateway's own ports.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from istiolite.agent.settings import (
    ProxySettings,
    SettingsError,
    invalid,
    parse_dns_label,
    parse_dns_subdomain,
    parse_ip,
    parse_ips,
    parse_json_object,
    parse_labels_json,
    split_host_port,
)

Json = dict[str, Any]
T = TypeVar("T")

XDS_CLUSTER = "xds-grpc"
PROMETHEUS_CLUSTER = "prometheus_stats"
AGENT_CLUSTER = "agent"

# How fast Envoy reconnects to discovery after losing it. Envoy's default backs off to 30 s,
# which leaves proxies on stale config for up to half a minute after discovery returns.
_RECONNECT: Json = {"retry_back_off": {"base_interval": "0.5s", "max_interval": "5s"}}
_META_PREFIX = "ISTIO_META_"
_META_JSON_PREFIX = "ISTIO_METAJSON_"
_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


class ProxyType(enum.StrEnum):
    """What the proxy is, as the node id's first part says it (Istio's node types)."""

    SIDECAR = "sidecar"  # beside an app, its traffic captured
    ROUTER = "router"  # a gateway: Envoy binds its own ports, nothing is captured


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """The pod this proxy speaks for, as discovery needs to know it (DESIGN §5)."""

    pod_name: str
    namespace: str
    ips: tuple[str, ...]
    service_account: str
    cluster_id: str = "Kubernetes"
    labels: Mapping[str, str] = field(default_factory=dict)
    extra_metadata: Mapping[str, Any] = field(default_factory=dict)
    proxy_type: ProxyType = ProxyType.SIDECAR

    def node_id(self, domain_suffix: str) -> str:
        """`TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN`, Istio's form."""
        ip = self.ips[0] if self.ips else "127.0.0.1"
        workload = f"{self.pod_name}.{self.namespace}"
        return f"{self.proxy_type}~{ip}~{workload}~{self.namespace}.svc.{domain_suffix}"

    def with_labels(self, labels: Mapping[str, str]) -> ProxyIdentity:
        return dataclasses.replace(self, labels=dict(labels))

    def service_cluster(self) -> str:
        app = self.labels.get("app") or self.labels.get("app.kubernetes.io/name")
        return f"{app}.{self.namespace}" if app else "istio-proxy"


def parse_labels_file(text: str) -> dict[str, str]:
    """The Kubernetes downward API's `key="value"` lines (values are Go-quoted strings).

    Raises ValueError naming the first line that is not of that form: a file that is not a
    labels file (a wrong POD_LABELS_PATH) must not become a pod without labels.
    """
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, quoted = line.partition("=")
        try:
            value = json.loads(quoted) if sep and key.strip() else None
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f'line {number}: expected key="value", as the downward API writes')
        labels[key.strip()] = value
    return labels


def identity_from_env(
    env: Mapping[str, str], proxy_type: ProxyType = ProxyType.SIDECAR
) -> ProxyIdentity:
    """Read the identity the injector (or a gateway's Deployment) puts into the environment.

    `ISTIO_META_<KEY>` become string metadata and `ISTIO_METAJSON_<KEY>` JSON metadata (an
    object, as Istio requires); labels come from `ISTIO_METAJSON_LABELS` (the downward-API file,
    when there is one, replaces them: `with_labels`). A variable that is not set takes its
    default; one that is set must hold what Kubernetes would put there, or this raises
    SettingsError with a line for each one that does not.
    """
    problems: list[str] = []

    def read(name: str, default: T, parse: Callable[[str], T]) -> T:
        if name not in env:
            return default
        try:
            return parse(env[name])
        except ValueError as error:
            problems.append(invalid(name, env[name], str(error)))
            return default

    extra: dict[str, Any] = {}
    for name in sorted(env):
        prefix = next((p for p in (_META_JSON_PREFIX, _META_PREFIX) if name.startswith(p)), "")
        if not prefix:
            continue
        key = name.removeprefix(prefix)
        if not key:
            problem = f"expected a metadata name after {prefix}, as in {prefix}CLUSTER_ID"
            problems.append(invalid(name, env[name], problem))
        elif prefix == _META_JSON_PREFIX:
            extra[key] = read(name, {}, _JSON_METADATA.get(key, parse_json_object))
        else:
            extra[key] = read(name, "", _STRING_METADATA.get(key, str))
    no_ips: tuple[str, ...] = ()
    instance_ip = read("INSTANCE_IP", no_ips, _one_ip)
    instance_ips = read("INSTANCE_IPS", no_ips, parse_ips)  # every IP of a dual-stack pod
    for known in ("NAME", "NAMESPACE", "INSTANCE_IPS", "SERVICE_ACCOUNT"):
        extra.pop(known, None)
    identity = ProxyIdentity(
        pod_name=read("POD_NAME", "unknown", parse_dns_subdomain),
        namespace=read("POD_NAMESPACE", "default", parse_dns_label),
        ips=instance_ips or instance_ip,
        service_account=read("SERVICE_ACCOUNT", "default", parse_dns_subdomain),
        cluster_id=str(extra.pop("CLUSTER_ID", "Kubernetes")),
        labels=extra.pop("LABELS", {}),
        extra_metadata=extra,
        proxy_type=proxy_type,
    )
    if problems:
        raise SettingsError(problems)
    return identity


def _one_ip(text: str) -> tuple[str, ...]:
    return (parse_ip(text),)


def _json_only(key: str, text: str) -> str:
    raise ValueError(f"expected nothing: {key} is a JSON object, set {_META_JSON_PREFIX}{key}")


def _cluster_id(text: str) -> str:
    if not text:
        raise ValueError("expected the name of the pod's cluster, such as Kubernetes")
    return text


# Metadata whose shape Istio's node metadata fixes; any other ISTIO_METAJSON_* is an object.
_JSON_METADATA: dict[str, Callable[[str], Any]] = {
    "LABELS": parse_labels_json,
    "ANNOTATIONS": parse_labels_json,
}
_STRING_METADATA: dict[str, Callable[[str], str]] = {
    "CLUSTER_ID": _cluster_id,
    **{key: functools.partial(_json_only, key) for key in _JSON_METADATA},
}


def render_bootstrap(settings: ProxySettings, identity: ProxyIdentity) -> Json:
    """The bootstrap as a JSON-ready dict (Envoy's v3 Bootstrap, proto3 JSON field names)."""
    return {
        "node": _node(settings, identity),
        "admin": {"address": _address("127.0.0.1", settings.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [
                    {"envoy_grpc": {"cluster_name": XDS_CLUSTER, "retry_policy": _RECONNECT}}
                ],
                "set_node_on_first_message_only": True,
            },
            # Initial fetch timeout 0: Envoy stays not-ready until discovery answers, rather
            # than going LIVE with no listeners and refusing the pod's traffic.
            "cds_config": _ads_source(),
            "lds_config": _ads_source(),
        },
        "stats_config": _stats_config(settings),
        "static_resources": {
            "clusters": [
                _xds_cluster(settings.discovery_address),
                _local_cluster(PROMETHEUS_CLUSTER, settings.admin_port),
                _local_cluster(AGENT_CLUSTER, settings.status_port),
            ],
            "listeners": [
                _http_listener(
                    "prometheus", settings.prometheus_port, "/stats/prometheus", PROMETHEUS_CLUSTER
                ),
                _http_listener("health", settings.health_port, "/healthz/ready", AGENT_CLUSTER),
            ],
        },
    }


def _stats_config(settings: ProxySettings) -> Json:
    """Envoy's stats without those of each outbound cluster, unless asked for.

    Envoy creates ~100 stats per cluster, and discovery makes one cluster per service port and
    subset: with 3,000 clusters that was 350,000 stats, most of the sidecar's 210 MB heap, and
    0.3-0.5 s of CPU for every walk of /stats (Prometheus scrapes one). Istio drops them by
    default too. Listener, connection-manager, xds-grpc and server stats stay.
    """
    if settings.cluster_stats:
        return {}
    outbound = {"prefix": "cluster.outbound|"}
    return {"stats_matcher": {"exclusion_list": {"patterns": [outbound]}}}


def render_json(bootstrap: Json) -> str:
    return json.dumps(bootstrap, indent=2) + "\n"


def _node(settings: ProxySettings, identity: ProxyIdentity) -> Json:
    metadata: Json = dict(identity.extra_metadata)
    metadata.update(
        {
            "NAME": identity.pod_name,
            "NAMESPACE": identity.namespace,
            "LABELS": dict(sorted(identity.labels.items())),
            "INSTANCE_IPS": ",".join(identity.ips),
            "SERVICE_ACCOUNT": identity.service_account,
            "CLUSTER_ID": identity.cluster_id,
        }
    )
    return {
        "id": identity.node_id(settings.domain_suffix),
        "cluster": identity.service_cluster(),
        "metadata": metadata,
    }


def _ads_source() -> Json:
    return {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"}


def _address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _endpoints(cluster: str, host: str, port: int) -> Json:
    return {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _xds_cluster(discovery_address: str) -> Json:
    host, port = split_host_port(discovery_address)
    return {
        "name": XDS_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": _endpoints(XDS_CLUSTER, host, port),
        # gRPC needs HTTP/2; keepalives notice a dead discovery (or a dead NAT entry) within
        # seconds instead of waiting for the kernel's two hours.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "10s"}
                    }
                },
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 30, "keepalive_interval": 10}
        },
    }


def _local_cluster(name: str, port: int) -> Json:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": _endpoints(name, "127.0.0.1", port),
    }


def _http_listener(name: str, port: int, path: str, cluster: str) -> Json:
    route = {"match": {"path": path}, "route": {"cluster": cluster}}
    manager = {
        "@type": _HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    return {
        "name": f"0.0.0.0_{port}",
        "address": _address("0.0.0.0", port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
