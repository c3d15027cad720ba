"""istiolite: a small, readable, Istio-compatible service mesh with Envoy as its data plane."""

__version__ = "0.1.0"
