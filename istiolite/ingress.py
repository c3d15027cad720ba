"""The ingress gateway istiolite runs: `istio-system/istio-ingressgateway`, as Istio names it.

`istiolite install` puts it on a cluster (install/manifests.py) unless
`gateways.ingress.enabled=false`; `istiolite analyze` counts it among the workloads a Gateway's
selector may match, as a Gateway written for Istio's default install (`istio: ingressgateway`)
expects it to be there. Its Envoy listens on the container ports; the Service maps Istio's
ports 80 and 443 to them, with fixed NodePorts that a kind cluster can map to the host.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMESPACE = "istio-system"
NAME = "istio-ingressgateway"
LABELS: Mapping[str, str] = {"app": NAME, "istio": "ingressgateway"}
# (Service port name, Service port, container port, NodePort): Istio's names and ports.
HTTP = ("http2", 80, 8080, 31080)
HTTPS = ("https", 443, 8443, 31443)
STATUS = ("status-port", 15021, 15021, None)
