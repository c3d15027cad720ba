"""The file registry: a watched directory of Kubernetes-style YAML."""

from istiolite.discovery.files.registry import FileRegistry

__all__ = ["FileRegistry"]
