"""The Kubernetes registry: Services, EndpointSlices, Pods, Nodes, Namespaces, VirtualServices,
DestinationRules and Sidecars from the API server, as typed resources, through lightkube's async
client."""

from istiolite.discovery.kube.reflector import Reflector, Tuning
from istiolite.discovery.kube.registry import KubeRegistry, kube_config

__all__ = ["KubeRegistry", "Reflector", "Tuning", "kube_config"]
