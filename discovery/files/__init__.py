"""The file registry: a watched directory of Kubernetes-style YAML."""

from istiolite.discovery.files.registry import FileRegistry
from istiolite.discovery.files.watching import DirectoryWatch, WatchStatus

__all__ = ["DirectoryWatch", "FileRegistry", "WatchStatus"]
