"""The ADS server: streams, versions, nonces, ACK/NACK, debounced pushes, shared bytes."""
