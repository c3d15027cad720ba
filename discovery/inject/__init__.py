"""Sidecar injection: the pure mutation, shared by the webhook and `istiolite kube-inject`.

- template.py: `SidecarValues` and the containers and volumes a sidecar adds;
- annotations.py: Istio's per-pod annotations that override the values;
- probes.py: app probes rewritten to the agent (the `ISTIO_KUBE_APP_PROBERS` format);
- mutate.py: `should_inject` and `inject(pod, values) -> pod`;
- workloads.py: `inject_manifest` for kube-inject (Pods and workload pod templates);
- admission.py: AdmissionReview in, AdmissionReview with a JSONPatch out;
- webhook.py: the TLS server around admission.py (imported on its own: it needs aiohttp).
"""

from istiolite.discovery.inject.admission import Reply, answer
from istiolite.discovery.inject.errors import InjectionError
from istiolite.discovery.inject.mutate import Decision, inject, should_inject
from istiolite.discovery.inject.template import Capture, SidecarValues
from istiolite.discovery.inject.workloads import POD_TEMPLATE_PATHS, inject_manifest, inject_object

__all__ = [
    "POD_TEMPLATE_PATHS",
    "Capture",
    "Decision",
    "InjectionError",
    "Reply",
    "SidecarValues",
    "answer",
    "inject",
    "inject_manifest",
    "inject_object",
    "should_inject",
]
