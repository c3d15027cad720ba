"""Shared by the injection tests: the values they inject with, and TLS files for the webhook."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from istiolite import certs
from istiolite.discovery.inject import SidecarValues

# A fixed image, so golden files do not change with the version.
VALUES = SidecarValues(proxy_image="istiolite/proxy:test")
WEBHOOK_HOSTS = ("istiod.istio-system.svc", "localhost", "127.0.0.1")


@dataclass(frozen=True)
class ServingFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


def write_serving_files(directory: Path, *, ca_name: str = "istiolite test CA") -> ServingFiles:
    ca = certs.generate_ca(ca_name)
    serving = certs.issue_serving_cert(ca, hosts=WEBHOOK_HOSTS)
    files = ServingFiles(directory / "ca.pem", directory / "tls.crt", directory / "tls.key")
    certs.write_pem(files.ca_file, ca.cert_pem())
    certs.write_pem(files.cert_file, serving.cert_pem())
    certs.write_pem(files.key_file, serving.key_pem(), private=True)
    return files
