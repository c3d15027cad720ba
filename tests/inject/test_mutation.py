"""The mutation's behaviour, one rule at a time (the golden files show whole workloads)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest

from istiolite.discovery.inject import InjectionError, SidecarValues, inject, should_inject
from tests.inject.reviews import pod
from tests.inject.support import VALUES

Json = dict[str, Any]


def _container(result: Json, name: str) -> Json:
    spec = result["spec"]
    every = [*spec.get("initContainers", []), *spec["containers"]]
    return next(c for c in every if c["name"] == name)


def _names(containers: list[Json]) -> list[str]:
    return [c["name"] for c in containers]


def _probers(result: Json) -> Json:
    env = {e["name"]: e.get("value") for e in _container(result, "istio-proxy")["env"]}
    return json.loads(env["ISTIO_KUBE_APP_PROBERS"]) if "ISTIO_KUBE_APP_PROBERS" in env else {}


def _annotated(annotations: dict[str, str], **spec: Any) -> Json:
    p = pod(**spec)
    p["metadata"]["annotations"] = annotations
    return p


def _init_args(result: Json) -> list[str]:
    return list(_container(result, "istio-init")["args"])


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


# --- what the sidecar is ---------------------------------------------------------------


def test_sidecar_runs_the_agent_as_proxy_uid_with_a_read_only_root() -> None:
    proxy = _container(inject(pod(), VALUES), "istio-proxy")
    assert proxy["args"][:4] == [
        "proxy",
        "sidecar",
        "--discovery-address",
        VALUES.discovery_address,
    ]
    security = proxy["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1337, 1337)
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert proxy["ports"] == [
        {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}
    ]
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert proxy["startupProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}


def test_sidecar_learns_its_identity_from_the_downward_api() -> None:
    proxy = _container(inject(pod(), VALUES), "istio-proxy")
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in proxy["env"] if "valueFrom" in e
    }
    assert fields == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "INSTANCE_IP": "status.podIP",
        "SERVICE_ACCOUNT": "spec.serviceAccountName",
    }
    result = inject(pod(), VALUES)
    podinfo = next(v for v in result["spec"]["volumes"] if v["name"] == "istio-podinfo")
    assert podinfo["downwardAPI"]["items"] == [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
    ]
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    assert mounts["istio-podinfo"] == "/etc/istio/pod"


def test_every_mounted_volume_is_added_to_the_pod() -> None:
    result = inject(pod(volumes=[{"name": "data", "emptyDir": {}}]), VALUES)
    declared = [v["name"] for v in result["spec"]["volumes"]]
    mounted = [m["name"] for m in _container(result, "istio-proxy")["volumeMounts"]]
    assert declared[0] == "data"
    assert set(mounted) <= set(declared)


def test_init_container_sets_up_capture_with_only_the_capabilities_it_needs() -> None:
    init = _container(inject(pod(), VALUES), "istio-init")
    assert init["args"][:3] == ["iptables", "--proxy-uid", "1337"]
    assert init["securityContext"]["capabilities"] == {
        "add": ["NET_ADMIN", "NET_RAW"],
        "drop": ["ALL"],
    }
    assert init["securityContext"]["privileged"] is False


def test_pod_level_run_as_non_root_does_not_block_istio_init() -> None:
    result = inject(pod(securityContext={"runAsNonRoot": True, "runAsUser": 1000}), VALUES)
    assert result["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000}
    init = _container(result, "istio-init")["securityContext"]
    assert (init["runAsNonRoot"], init["runAsUser"]) == (False, 0)


def test_values_set_image_address_log_level_and_resources() -> None:
    values = SidecarValues(
        proxy_image="registry.local/proxy:1",
        discovery_address="pilot.mesh.svc:15010",
        log_level="debug",
        proxy_cpu="50m",
        proxy_memory="64Mi",
        proxy_cpu_limit="",
        proxy_memory_limit="",
    )
    result = inject(pod(), values)
    proxy, init = _container(result, "istio-proxy"), _container(result, "istio-init")
    assert proxy["image"] == init["image"] == "registry.local/proxy:1"
    assert _flag(proxy["args"], "--discovery-address") == "pilot.mesh.svc:15010"
    assert _flag(proxy["args"], "--log-level") == "debug"
    assert proxy["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}}


# --- where it goes ------------------------------------------------------------------------


def test_default_mode_appends_proxy_and_runs_capture_after_the_pods_init_containers() -> None:
    result = inject(pod(initContainers=[{"name": "migrate", "image": "m"}]), VALUES)
    assert _names(result["spec"]["containers"]) == ["web", "istio-proxy"]
    assert _names(result["spec"]["initContainers"]) == ["migrate", "istio-init"]
    assert "lifecycle" not in _container(result, "istio-proxy")


def test_hold_mode_starts_the_proxy_first_and_waits_for_it() -> None:
    values = SidecarValues(hold_application_until_proxy_starts=True)
    result = inject(pod(), values)
    assert _names(result["spec"]["containers"]) == ["istio-proxy", "web"]
    hook = result["spec"]["containers"][0]["lifecycle"]["postStart"]
    assert hook == {"exec": {"command": ["pilot-agent", "wait"]}}


def test_hold_mode_from_proxy_config_annotation() -> None:
    config = "holdApplicationUntilProxyStarts: true\nconcurrency: 2\n"
    result = inject(_annotated({"proxy.istio.io/config": config}), VALUES)
    assert _names(result["spec"]["containers"]) == ["istio-proxy", "web"]


def test_proxy_config_annotation_can_turn_hold_mode_off() -> None:
    values = SidecarValues(hold_application_until_proxy_starts=True)
    config = '{"holdApplicationUntilProxyStarts": false}'
    result = inject(_annotated({"proxy.istio.io/config": config}), values)
    assert _names(result["spec"]["containers"]) == ["web", "istio-proxy"]


def test_native_mode_makes_the_proxy_a_restartable_init_container_before_the_pods_own() -> None:
    values = SidecarValues(native_sidecar=True)
    result = inject(pod(initContainers=[{"name": "migrate", "image": "m"}]), values)
    assert _names(result["spec"]["initContainers"]) == ["istio-init", "istio-proxy", "migrate"]
    assert _names(result["spec"]["containers"]) == ["web"]
    proxy = _container(result, "istio-proxy")
    assert proxy["restartPolicy"] == "Always"
    assert "lifecycle" not in proxy  # the startup probe already holds the app


@pytest.mark.parametrize(("annotation", "native"), [("true", True), ("false", False)])
def test_native_sidecar_annotation_overrides_the_mesh_default(
    annotation: str, native: bool
) -> None:
    values = SidecarValues(native_sidecar=not native)
    result = inject(_annotated({"sidecar.istio.io/nativeSidecar": annotation}), values)
    assert ("restartPolicy" in _container(result, "istio-proxy")) is native


def test_default_container_is_the_first_app_container_unless_already_chosen() -> None:
    result = inject(pod(), SidecarValues(hold_application_until_proxy_starts=True))
    assert result["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "web"
    chosen = _annotated({"kubectl.kubernetes.io/default-container": "other"})
    result = inject(chosen, VALUES)
    assert result["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "other"


def test_status_annotation_records_what_was_added() -> None:
    status = json.loads(inject(pod(), VALUES)["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init"]
    assert status["containers"] == ["istio-proxy"]
    assert status["volumes"] == ["istio-envoy", "istio-data", "istio-podinfo"]
    native = inject(pod(), SidecarValues(native_sidecar=True))
    status = json.loads(native["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert (status["initContainers"], status["containers"]) == (["istio-init", "istio-proxy"], [])


# --- app probes ---------------------------------------------------------------------------


def test_http_probe_on_a_named_port_goes_to_the_agent_with_the_port_resolved() -> None:
    result = inject(pod(), VALUES)
    assert result["spec"]["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/app-health/web/readyz", "port": 15020, "scheme": "HTTP"}
    }
    assert _probers(result) == {
        "/app-health/web/readyz": {
            "httpGet": {"port": 8080, "path": "/ready"},
            "timeoutSeconds": 1,
        }
    }


def test_tcp_and_grpc_probes_become_gets_of_the_agent_and_keep_their_timing() -> None:
    p = pod()
    web = p["spec"]["containers"][0]
    web["livenessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 7, "timeoutSeconds": 2}
    web["startupProbe"] = {"grpc": {"port": 9090, "service": "up"}, "failureThreshold": 30}
    result = inject(p, VALUES)
    web = result["spec"]["containers"][0]
    assert web["livenessProbe"] == {
        "httpGet": {"path": "/app-health/web/livez", "port": 15020, "scheme": "HTTP"},
        "periodSeconds": 7,
        "timeoutSeconds": 2,
    }
    assert web["startupProbe"]["failureThreshold"] == 30
    probers = _probers(result)
    assert probers["/app-health/web/livez"] == {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2}
    assert probers["/app-health/web/startupz"] == {
        "grpc": {"port": 9090, "service": "up"},
        "timeoutSeconds": 1,
    }


def test_exec_probes_stay_with_the_kubelet() -> None:
    p = pod()
    probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 3}
    p["spec"]["containers"][0]["readinessProbe"] = probe
    result = inject(p, VALUES)
    assert result["spec"]["containers"][0]["readinessProbe"] == probe
    assert not any(
        e["name"] == "ISTIO_KUBE_APP_PROBERS" for e in _container(result, "istio-proxy")["env"]
    )


def test_probe_on_an_undeclared_named_port_is_left_as_it_is() -> None:
    p = pod()
    p["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/", "port": "admin"}}
    result = inject(p, VALUES)
    assert result["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == "admin"
    assert _probers(result) == {}


def test_probes_of_init_containers_are_not_rewritten() -> None:
    probe = {"httpGet": {"path": "/", "port": 80}}
    sidecar = {"name": "log", "image": "l", "restartPolicy": "Always", "readinessProbe": probe}
    result = inject(pod(initContainers=[sidecar]), VALUES)
    assert _container(result, "log")["readinessProbe"] == probe


# --- capture annotations ------------------------------------------------------------------


def test_proxy_ports_are_never_captured_inbound() -> None:
    result = inject(
        _annotated({"traffic.sidecar.istio.io/excludeInboundPorts": "8443,15020"}), VALUES
    )
    assert _flag(_init_args(result), "--exclude-inbound-ports") == "15020,15021,15090,8443"


@pytest.mark.parametrize(
    ("annotation", "value", "flag", "expected"),
    [
        ("includeInboundPorts", "*", "--include-inbound-ports", "*"),
        ("includeInboundPorts", " 80, 443 ", "--include-inbound-ports", "80,443"),
        ("includeInboundPorts", "", "--include-inbound-ports", ""),
        ("excludeOutboundPorts", "5432, 6379", "--exclude-outbound-ports", "5432,6379"),
        (
            "excludeOutboundIPRanges",
            "169.254.169.254/32,10.0.0.0/8, fd00::/8",
            "--exclude-outbound-cidrs",
            "169.254.169.254/32,10.0.0.0/8,fd00::/8",
        ),
    ],
)
def test_capture_annotations_become_iptables_flags(
    annotation: str, value: str, flag: str, expected: str
) -> None:
    result = inject(_annotated({f"traffic.sidecar.istio.io/{annotation}": value}), VALUES)
    assert _flag(_init_args(result), flag) == expected


def test_without_capture_annotations_only_the_defaults_are_passed() -> None:
    args = _init_args(inject(pod(), VALUES))
    assert args == [
        "iptables",
        "--proxy-uid",
        "1337",
        "--exclude-inbound-ports",
        "15020,15021,15090",
    ]


def test_resource_annotations_override_requests_and_an_empty_limit_removes_it() -> None:
    annotations = {
        "sidecar.istio.io/proxyCPU": "300m",
        "sidecar.istio.io/proxyMemory": "1.5Gi",
        "sidecar.istio.io/proxyCPULimit": "",
        "sidecar.istio.io/proxyMemoryLimit": "2Gi",
    }
    proxy = _container(inject(_annotated(annotations), VALUES), "istio-proxy")
    assert proxy["resources"] == {
        "requests": {"cpu": "300m", "memory": "1.5Gi"},
        "limits": {"memory": "2Gi"},
    }


@pytest.mark.parametrize(
    ("annotation", "value", "complaint"),
    [
        ("traffic.sidecar.istio.io/excludeInboundPorts", "http", "'http' is not a port"),
        ("traffic.sidecar.istio.io/excludeInboundPorts", "0", "'0' is not a port"),
        ("traffic.sidecar.istio.io/includeInboundPorts", "80;443", "'80;443' is not a port"),
        ("traffic.sidecar.istio.io/excludeOutboundPorts", "65536", "ports 1-65535"),
        ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0/33", "is not a CIDR"),
        ("sidecar.istio.io/proxyCPU", "lots", "not a Kubernetes quantity"),
        ("sidecar.istio.io/proxyMemory", "128MB", "not a Kubernetes quantity"),
        ("sidecar.istio.io/logLevel", "chatty", "accepted: trace, debug"),
        ("sidecar.istio.io/nativeSidecar", "sometimes", "accepted: true, false"),
        ("proxy.istio.io/config", "[1, 2]", "must be a ProxyConfig object"),
        ("proxy.istio.io/config", "a: [", "is not YAML"),
        ("proxy.istio.io/config", "holdApplicationUntilProxyStarts: 1", "must be true or false"),
        ("readiness.status.sidecar.istio.io/periodSeconds", "0", "at least 1"),
        ("readiness.status.sidecar.istio.io/failureThreshold", "-1", "at least 1"),
        ("readiness.status.sidecar.istio.io/initialDelaySeconds", "1.5", "whole number"),
        ("readiness.status.sidecar.istio.io/periodSeconds", "99999999999", "whole number"),
    ],
)
def test_bad_annotations_are_refused_naming_the_annotation(
    annotation: str, value: str, complaint: str
) -> None:
    with pytest.raises(InjectionError) as caught:
        inject(_annotated({annotation: value}), VALUES)
    assert caught.value.path.startswith(f"metadata.annotations[{annotation!r}]")
    assert complaint in str(caught.value)


def test_readiness_annotations_tune_the_proxys_readiness_probe() -> None:
    annotations = {
        "readiness.status.sidecar.istio.io/initialDelaySeconds": "2",
        "readiness.status.sidecar.istio.io/periodSeconds": "1",
        "readiness.status.sidecar.istio.io/failureThreshold": "1",
    }
    probe = _container(inject(_annotated(annotations), VALUES), "istio-proxy")["readinessProbe"]
    assert (probe["initialDelaySeconds"], probe["periodSeconds"], probe["failureThreshold"]) == (
        2,
        1,
        1,
    )
    default = _container(inject(pod(), VALUES), "istio-proxy")["readinessProbe"]
    assert (default["periodSeconds"], default["failureThreshold"]) == (15, 4)
    assert "initialDelaySeconds" not in default


# --- policy and idempotence ---------------------------------------------------------------


def test_host_network_pods_are_left_alone() -> None:
    p = pod(hostNetwork=True)
    assert inject(p, VALUES) == p
    assert "node's network" in should_inject(p).reason


@pytest.mark.parametrize("switch", ["false", "False", "0", "no", "off"])
def test_pods_opt_out_by_annotation(switch: str) -> None:
    p = _annotated({"sidecar.istio.io/inject": switch})
    assert inject(p, VALUES) == p


def test_the_opt_out_label_wins_over_the_annotation() -> None:
    p = _annotated({"sidecar.istio.io/inject": "true"})
    p["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
    assert inject(p, VALUES) == p
    p["metadata"]["labels"]["sidecar.istio.io/inject"] = "true"
    p["metadata"]["annotations"]["sidecar.istio.io/inject"] = "false"
    assert inject(p, VALUES) != p


def test_opted_out_pods_are_not_checked_for_bad_annotations() -> None:
    p = _annotated({"sidecar.istio.io/inject": "false", "sidecar.istio.io/proxyCPU": "lots"})
    assert inject(p, VALUES) == p


def test_a_pod_with_its_own_istio_proxy_container_is_left_alone() -> None:
    p = pod()
    p["spec"]["containers"].append({"name": "istio-proxy", "image": "custom"})
    assert inject(p, VALUES) == p


def test_injecting_twice_changes_nothing_even_with_other_values() -> None:
    once = inject(pod(), VALUES)
    assert inject(once, SidecarValues(native_sidecar=True, proxy_image="other")) == once


def test_injection_does_not_change_its_input() -> None:
    p = _annotated({"traffic.sidecar.istio.io/excludeInboundPorts": "9000"})
    before = copy.deepcopy(p)
    inject(p, VALUES)
    assert p == before


def test_pod_without_metadata_gets_metadata_for_its_annotations() -> None:
    p = pod()
    del p["metadata"]
    result = inject(p, VALUES)
    assert "sidecar.istio.io/status" in result["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda p: p.update(spec=None), "spec"),
        (lambda p: p["spec"].update(containers=[]), "spec.containers"),
        (lambda p: p["spec"].update(initContainers="init"), "spec.initContainers"),
        (lambda p: p["spec"]["containers"].append({"image": "x"}), "spec.containers[1].name"),
        (lambda p: p["spec"].update(volumes={"a": 1}), "spec.volumes"),
        (lambda p: p["metadata"].update(labels={"a": 1}), "metadata.labels['a']"),
        (
            lambda p: p["spec"]["containers"][0].update(livenessProbe={"tcpSocket": {"port": 1.5}}),
            "spec.containers[0].livenessProbe.tcpSocket.port",
        ),
    ],
)
def test_malformed_pods_are_refused_naming_the_field(change: Any, path: str) -> None:
    p = pod()
    change(p)
    with pytest.raises(InjectionError) as caught:
        inject(p, VALUES)
    assert caught.value.path == path


def test_the_mutation_loads_no_server_network_or_cluster_code() -> None:
    """Only webhook.py may bring in a server; kube-inject and tests run the mutation alone."""
    banned = ("asyncio", "aiohttp", "ssl", "socket", "httpx2", "grpc", "lightkube")
    code = (
        "import sys, istiolite.discovery.inject\n"
        f"print(sorted(m for m in {banned!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
