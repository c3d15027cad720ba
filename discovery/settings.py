"""pilot-discovery's settings: one place for every flag, its environment variable and default.

The command line only fills this in; `click` options take their defaults and environment
variables from here (see cli.py), so a setting is declared once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from istiolite import __version__


def _env(name: str, doc: str) -> dict[str, str]:
    return {"env": name, "doc": doc}


@dataclass(frozen=True, slots=True)
class Settings:
    kubeconfig: Path | None = field(
        default=None, metadata=_env("KUBECONFIG", "kubeconfig of the cluster to watch")
    )
    config_dir: Path | None = field(
        default=None,
        metadata=_env("PILOT_CONFIG_DIR", "directory of YAML to watch instead of a cluster"),
    )
    grpc_addr: str = field(
        default="0.0.0.0:15010", metadata=_env("PILOT_GRPC_ADDR", "xDS (ADS) gRPC address")
    )
    http_addr: str = field(
        default="0.0.0.0:8080", metadata=_env("PILOT_HTTP_ADDR", "/ready and /debug/* address")
    )
    monitoring_addr: str = field(
        default="0.0.0.0:15014", metadata=_env("PILOT_MONITORING_ADDR", "/metrics address")
    )
    webhook_addr: str = field(
        default="0.0.0.0:15017",
        metadata=_env("PILOT_WEBHOOK_ADDR", "injection webhook (TLS) address"),
    )
    webhook_cert: Path | None = field(
        default=None, metadata=_env("PILOT_WEBHOOK_CERT", "webhook PEM certificate")
    )
    webhook_key: Path | None = field(
        default=None, metadata=_env("PILOT_WEBHOOK_KEY", "webhook PEM key")
    )
    proxy_image: str = field(
        default=f"istiolite/proxy:{__version__}",
        metadata=_env("PILOT_PROXY_IMAGE", "image of the sidecar the webhook injects"),
    )
    proxy_image_pull_policy: str = field(
        default="IfNotPresent",
        metadata=_env("PILOT_PROXY_IMAGE_PULL_POLICY", "imagePullPolicy of injected containers"),
    )
    sidecar_discovery_address: str = field(
        default="istiod.istio-system.svc:15010",
        metadata=_env(
            "PILOT_SIDECAR_DISCOVERY_ADDRESS", "where injected sidecars reach this server's xDS"
        ),
    )
    native_sidecar: bool = field(
        default=False, metadata=_env("PILOT_NATIVE_SIDECAR", "inject the proxy as a native sidecar")
    )
    domain_suffix: str = field(
        default="cluster.local", metadata=_env("DOMAIN_SUFFIX", "the cluster's DNS domain")
    )
    root_namespace: str = field(
        default="istio-system",
        metadata=_env(
            "PILOT_ROOT_NAMESPACE", "where a Sidecar without workloadSelector applies mesh-wide"
        ),
    )
    debounce_after: float = field(
        default=0.1,
        metadata=_env("PILOT_DEBOUNCE_AFTER", "seconds of quiet after a change before a push"),
    )
    debounce_max: float = field(
        default=10.0,
        metadata=_env("PILOT_DEBOUNCE_MAX", "longest a push waits for quiet, in seconds"),
    )


def describe(name: str) -> dict[str, Any]:
    """Default, environment variable and help text of one setting, for click."""
    f = next(f for f in dataclasses.fields(Settings) if f.name == name)
    return {
        "default": f.default,
        "envvar": f.metadata["env"],
        "help": f.metadata["doc"],
        "show_default": True,
    }
