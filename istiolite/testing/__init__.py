"""Reusable test infrastructure: real processes (etcd and kube-apiserver, pilot-discovery,
Envoy) started on loopback for tests and benchmarks. Import the module you need."""
