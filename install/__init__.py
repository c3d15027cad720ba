"""The installer: the control plane as manifests, and the commands that apply them.

Pure: `values` (what `--set` may change), `webhookcerts` (keep or renew the webhook's TLS),
`manifests` (render), `status` (read health from objects), `crds` (generated from the API model).
Edges: `cluster` (every API call, through lightkube), `installer` (the steps, in order), `cli`.
"""
