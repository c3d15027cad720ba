"""The installer: manifests for the control plane and the logic that applies them."""
