"""pilot-agent: Envoy's bootstrap, its supervisor, the status server, traffic capture."""
