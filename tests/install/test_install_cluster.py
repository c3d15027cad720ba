"""`istiolite install | uninstall | verify-install` against a real kube-apiserver.

There are no nodes and no controllers here, so istiod never runs: where a test needs the
Deployment available (or stuck), it writes the Deployment's status through the status
subresource, as the deployment controller would. Everything else is what the API server did.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, ServiceAccount
from lightkube.types import PatchType

from istiolite.install import manifests, webhookcerts
from istiolite.install.cluster import Cluster
from istiolite.install.values import Values
from tests.install.support import admin, run, token_kubeconfig

pytestmark = pytest.mark.kube

APPLIED = [f"{r.kind.lower()}/{r.name}" for r in manifests.inventory()]


def installed(kubeconfig: Path, *args: str) -> str:
    result = run("install", *args, kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    return result.output


def live(cluster: Cluster) -> dict[manifests.Ref, dict[str, Any] | None]:
    return {ref: cluster.get(ref) for ref in manifests.inventory()}


def contains(got: Any, want: Any, path: str = "") -> list[str]:
    """Where `got` lacks what `want` has; the API server may only add (defaults, status)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not an object"]
        return [p for k, v in want.items() for p in contains(got.get(k), v, f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {got!r} != {want!r}"]
        return [
            p
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for p in contains(g, w, f"{path}[{i}]")
        ]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


DEPLOYMENTS = (manifests.ISTIOD_DEPLOYMENT, manifests.GATEWAY_DEPLOYMENT)


def set_deployment_status(
    kubeconfig: Path, status: dict[str, Any], name: str = manifests.NAME
) -> None:
    with admin(kubeconfig) as client:
        client.patch(
            Deployment.Status,
            name,
            {"status": status},
            namespace=manifests.NAMESPACE,
            patch_type=PatchType.MERGE,
        )


def available(kubeconfig: Path, cluster: Cluster) -> None:
    """Every installed Deployment available, as the deployment controller would say."""
    for ref in DEPLOYMENTS:
        deployment = cluster.get(ref)
        if deployment is None:
            continue
        generation = deployment["metadata"]["generation"]
        set_deployment_status(
            kubeconfig,
            {
                "observedGeneration": generation,
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
                ],
            },
            ref.name,
        )


def test_install_creates_every_object_as_rendered(kubeconfig: Path, cluster: Cluster) -> None:
    installed(kubeconfig)
    objects = live(cluster)
    secret = cluster.secret_data()
    assert secret is not None
    certs = webhookcerts.WebhookCerts(
        *(secret[k] for k in ("ca.crt", "ca.key", "tls.crt", "tls.key"))
    )
    for want in manifests.render(Values(), certs):
        got = objects[manifests.ref(want)]
        assert got is not None, f"{manifests.ref(want)} missing"
        assert contains(got, want) == [], manifests.ref(want)
    for crd in (o for r, o in objects.items() if r.kind == "CustomResourceDefinition"):
        assert crd is not None
        assert {"type": "Established", "status": "True"}.items() <= {
            k: v
            for c in crd["status"]["conditions"]
            if c["type"] == "Established"
            for k, v in c.items()
        }.items()


def test_installing_again_changes_nothing(kubeconfig: Path, cluster: Cluster) -> None:
    installed(kubeconfig)
    before = {r: o["metadata"]["resourceVersion"] for r, o in live(cluster).items() if o}
    output = installed(kubeconfig)
    after = {r: o["metadata"]["resourceVersion"] for r, o in live(cluster).items() if o}
    assert after == before
    assert output.splitlines()[0].startswith("webhook certificate: kept the existing certificate")
    assert output.splitlines()[1:] == [f"{name} unchanged" for name in APPLIED]


def test_a_changed_value_reconfigures_only_what_it_touches(kubeconfig: Path) -> None:
    installed(kubeconfig)
    output = installed(kubeconfig, "--set", "replicas=2", "--set", "logLevel=debug")
    assert "deployment/istiod configured" in output.splitlines()
    assert sum(line.endswith(" unchanged") for line in output.splitlines()) == len(APPLIED) - 1
    installed(kubeconfig)  # back to the defaults for the other tests


def test_a_field_taken_over_by_another_manager_is_a_conflict_until_forced(
    kubeconfig: Path, cluster: Cluster
) -> None:
    installed(kubeconfig)
    with admin(kubeconfig) as client:
        client.patch(
            Deployment,
            manifests.NAME,
            {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}},
            namespace=manifests.NAMESPACE,
            patch_type=PatchType.APPLY,
            field_manager="someone-else",
            force=True,
        )
    refused = run("install", kubeconfig=kubeconfig)
    assert refused.exit_code == 1
    assert "applying Deployment istio-system/istiod: Apply failed with 1 conflict" in refused.output
    assert "--force takes them over" in refused.output
    assert "Traceback" not in refused.output

    installed(kubeconfig, "--force")
    deployment = cluster.get(manifests.ref(manifests.deployment(Values())))
    assert deployment is not None and deployment["spec"]["replicas"] == 1


def test_uninstall_removes_what_install_created_but_the_crds_and_namespace(
    kubeconfig: Path, cluster: Cluster
) -> None:
    installed(kubeconfig)
    first = run("uninstall", kubeconfig=kubeconfig)
    assert first.exit_code == 0, first.output
    kept = ("Namespace", "CustomResourceDefinition")
    for ref, obj in live(cluster).items():
        assert (obj is not None) == (ref.kind in kept), ref
    # The webhook goes first, so pod creation never waits on an istiod being deleted.
    assert (
        first.output.splitlines()[0] == f"mutatingwebhookconfiguration/{manifests.WEBHOOK} deleted"
    )

    again = run("uninstall", kubeconfig=kubeconfig)
    assert again.exit_code == 0, again.output
    assert all(line.endswith(" not found") for line in again.output.splitlines())


def test_verify_install_passes_once_istiod_and_the_gateway_are_available(
    kubeconfig: Path, cluster: Cluster
) -> None:
    installed(kubeconfig)
    for ref in DEPLOYMENTS:
        set_deployment_status(kubeconfig, {"observedGeneration": 0}, ref.name)
    pending = run("verify-install", kubeconfig=kubeconfig)
    assert pending.exit_code == 1
    failed = [line for line in pending.output.splitlines() if line.startswith("FAIL")]
    assert failed == [
        f"FAIL  Deployment istio-system/{name}: "
        "the deployment controller has not acted on the latest spec yet"
        for name in ("istiod", "istio-ingressgateway")
    ]
    # One check per installed object, and one that the webhook's caBundle verifies istiod's cert.
    checks = len(manifests.inventory()) + 1
    assert f"Error: 2 of {checks} checks failed: Deployment istio-system/istiod" in pending.output

    available(kubeconfig, cluster)
    passed = run("verify-install", kubeconfig=kubeconfig)
    assert passed.exit_code == 0, passed.output
    assert passed.output.splitlines()[-1] == f"all {checks} checks passed"


def test_verify_install_names_a_webhook_that_does_not_trust_istiods_certificate(
    kubeconfig: Path, cluster: Cluster
) -> None:
    installed(kubeconfig)
    available(kubeconfig, cluster)
    stranger = webhookcerts.issue(now=datetime.now(UTC))
    with admin(kubeconfig) as client:
        client.patch(
            MutatingWebhookConfiguration,
            manifests.WEBHOOK,
            manifests.mutating_webhook(stranger),
            patch_type=PatchType.APPLY,
            field_manager="someone-else",
            force=True,
        )
    result = run("verify-install", kubeconfig=kubeconfig)
    assert result.exit_code == 1
    assert (
        "FAIL  webhook caBundle verifies istiod's serving certificate: "
        "not signed by the CA CN=istiolite webhook CA"
    ) in result.output
    installed(kubeconfig, "--force")  # repaired: the caBundle follows the Secret again
    assert run("verify-install", kubeconfig=kubeconfig).exit_code == 0


def test_wait_times_out_naming_what_keeps_istiod_unavailable(
    kubeconfig: Path, cluster: Cluster
) -> None:
    installed(kubeconfig)
    deployment = cluster.get(manifests.ref(manifests.deployment(Values())))
    assert deployment is not None
    set_deployment_status(
        kubeconfig,
        {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 0,
            "unavailableReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                }
            ],
        },
    )
    with admin(kubeconfig) as client:
        name = "istiod-7d9f8-abcde"
        client.apply(
            Pod(
                metadata=ObjectMeta(
                    name=name, namespace=manifests.NAMESPACE, labels={"app": "istiod"}
                ),
                spec=PodSpec(containers=[Container(name="discovery", image="istiolite/pilot:x")]),
            )
        )
        client.patch(
            Pod.Status,
            name,
            {
                "status": {
                    "containerStatuses": [
                        {
                            "name": "discovery",
                            "image": "istiolite/pilot:x",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {
                                "waiting": {"reason": "ErrImagePull", "message": "not found"}
                            },
                        }
                    ]
                }
            },
            namespace=manifests.NAMESPACE,
            patch_type=PatchType.MERGE,
        )
    try:
        result = run("install", "--wait", "--timeout=1s", kubeconfig=kubeconfig)
    finally:
        with admin(kubeconfig) as client:
            client.delete(Pod, name, namespace=manifests.NAMESPACE, grace_period=0)
    assert result.exit_code == 1
    assert result.output.splitlines()[-3:] == [
        "Error: Deployment istio-system/istiod is not available after 1s: "
        "0 of 1 updated replicas available",
        "  Available=False (MinimumReplicasUnavailable: "
        "Deployment does not have minimum availability.)",
        f"  pod {name}: container discovery waiting: ErrImagePull (not found)",
    ]

    available(kubeconfig, cluster)
    done = installed(kubeconfig, "--wait", "--timeout=10s")
    assert done.splitlines()[-2:] == [
        "istio-system/istiod is available",
        "istio-system/istio-ingressgateway is available",
    ]


def test_the_gateway_can_be_left_out_and_is_removed_when_turned_off(
    kubeconfig: Path, cluster: Cluster
) -> None:
    off = "gateways.ingress.enabled=false"
    gateway = [r for r in manifests.inventory() if r not in manifests.expected(gateway=False)]
    assert [str(r) for r in gateway] == [
        "ServiceAccount istio-system/istio-ingressgateway-service-account",
        "Deployment istio-system/istio-ingressgateway",
        "Service istio-system/istio-ingressgateway",
    ]
    installed(kubeconfig)
    available(kubeconfig, cluster)
    output = installed(kubeconfig, "--set", off)
    assert output.splitlines()[-3:] == [
        "service/istio-ingressgateway deleted (gateways.ingress.enabled=false)",
        "deployment/istio-ingressgateway deleted (gateways.ingress.enabled=false)",
        "serviceaccount/istio-ingressgateway-service-account deleted "
        "(gateways.ingress.enabled=false)",
    ]
    assert all(cluster.get(r) is None for r in gateway)
    # verify-install knows it was left out, from what install recorded on istiod.
    available(kubeconfig, cluster)
    checks = len(manifests.expected(gateway=False)) + 1
    result = run("verify-install", kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"all {checks} checks passed"
    assert "istio-ingressgateway" not in result.output
    assert "deleted" not in installed(kubeconfig, "--set", off)  # nothing left to remove

    installed(kubeconfig)  # as the other tests found it
    available(kubeconfig, cluster)
    with admin(kubeconfig) as client:
        client.delete(Deployment, "istio-ingressgateway", namespace=manifests.NAMESPACE)
    missing = run("verify-install", kubeconfig=kubeconfig)
    assert missing.exit_code == 1
    assert "FAIL  Deployment istio-system/istio-ingressgateway: not found" in missing.output
    installed(kubeconfig)


def test_the_gateway_service_keeps_its_fixed_node_ports(kubeconfig: Path, cluster: Cluster) -> None:
    installed(kubeconfig)
    service = cluster.get(manifests.ref(manifests.gateway_service()))
    assert service is not None and service["spec"]["type"] == "LoadBalancer"
    ports = {p["name"]: (p["port"], p.get("nodePort")) for p in service["spec"]["ports"]}
    assert ports["http2"] == (80, 31080) and ports["https"] == (443, 31443)
    assert ports["status-port"][1] is not None  # one the API server chose


def test_a_forbidden_request_names_the_resource_and_the_identity(
    kubeconfig: Path, tmp_path: Path
) -> None:
    with admin(kubeconfig) as client:
        client.apply(ServiceAccount(metadata=ObjectMeta(name="nobody", namespace="default")))
    nobody = token_kubeconfig(kubeconfig, namespace="default", account="nobody", out=tmp_path / "k")
    result = run("install", kubeconfig=nobody)
    assert result.exit_code == 1
    assert result.output == (
        "Error: reading Secret istio-system/istiod-webhook-certs: secrets "
        '"istiod-webhook-certs" is forbidden: User "system:serviceaccount:default:nobody" '
        'cannot get resource "secrets" in API group "" in the namespace "istio-system"\n'
    )


def test_uninstall_purge_also_deletes_the_crds(kubeconfig: Path, cluster: Cluster) -> None:
    installed(kubeconfig)
    result = run("uninstall", "--purge", kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    crds = [r for r in manifests.inventory() if r.kind == "CustomResourceDefinition"]
    assert [f"customresourcedefinition/{r.name} deleted" for r in reversed(crds)] == [
        line for line in result.output.splitlines() if line.startswith("customresource")
    ]
    deadline = time.monotonic() + 30  # the API server finalizes a deleted CRD by itself
    while any(cluster.get(r) is not None for r in crds):
        assert time.monotonic() < deadline, "the CRDs are still there"
        time.sleep(0.2)
    assert cluster.get(manifests.ref(manifests.namespace())) is not None
    installed(kubeconfig)  # as the other tests found it
