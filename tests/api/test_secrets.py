# ruff: noqa: E501  (the table of broken credentials: one case per line reads best)
"""A gateway's TLS credential: the Secret is read in Kubernetes' and Istio's forms and checked as
Envoy will read it, so a bad certificate is an error naming the Secret's key, not a listener
Envoy refuses. Other Secrets are none of the mesh's business and stay unread."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from istiolite.agent.settings import ProxySettings
from istiolite.api import Other, Secret, parse_yaml

Key = CertificateIssuerPrivateKeyTypes


def key_pem(key: Key, *, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def cert_pem(key: Key, *, name: str = "bookinfo.example.com", issuer: Key | None = None) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    signer = issuer or key
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signer, None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def secret(data: dict[str, bytes], *, kind: str = "kubernetes.io/tls", plain: bool = False) -> str:
    field = "stringData" if plain else "data"
    values = {k: v.decode() if plain else base64.b64encode(v).decode() for k, v in data.items()}
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bookinfo-cert", "namespace": "istio-system"},
        field: values,
    }
    if kind:
        doc["type"] = kind
    return yaml.safe_dump(doc)


def parsed(text: str) -> Secret | Other:
    [item] = parse_yaml(text)
    assert item.error is None, str(item.error)
    assert isinstance(item.resource, Secret | Other)
    return item.resource


def errors(text: str) -> list[str]:
    [item] = parse_yaml(text)
    assert item.error is not None, "accepted"
    return [str(e) for e in item.error.errors]


def test_a_tls_secret_gives_the_chain_key_and_ca_as_pem(p256: ec.EllipticCurvePrivateKey) -> None:
    ca = ec.generate_private_key(ec.SECP256R1())
    chain, key, ca_pem = cert_pem(p256, issuer=ca), key_pem(p256), cert_pem(ca, name="ca")
    found = parsed(secret({"tls.crt": chain, "tls.key": key, "ca.crt": ca_pem}))
    assert isinstance(found, Secret)
    assert (found.certificate_chain, found.private_key, found.ca_certificates) == (
        chain,
        key,
        ca_pem,
    )
    assert found.has_certificate and found.meta.key == "istio-system/bookinfo-cert"


def test_istios_generic_form_and_string_data_are_read(p256: ec.EllipticCurvePrivateKey) -> None:
    chain, key = cert_pem(p256), key_pem(p256)
    found = parsed(secret({"cert": chain, "key": key}, kind="Opaque", plain=True))
    assert isinstance(found, Secret)
    assert (found.certificate_chain, found.private_key, found.ca_certificates) == (chain, key, None)


def test_with_both_forms_istios_generic_keys_win_as_in_istio(
    p256: ec.EllipticCurvePrivateKey,
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    data = {
        "cert": cert_pem(p256),
        "key": key_pem(p256),
        "tls.crt": cert_pem(other),
        "tls.key": key_pem(other),
        "cacert": cert_pem(p256, name="generic-ca"),
        "ca.crt": cert_pem(other, name="tls-ca"),
    }
    found = parsed(secret(data, kind="Opaque"))
    assert isinstance(found, Secret)
    assert (found.certificate_chain, found.private_key, found.ca_certificates) == (
        data["cert"],
        data["key"],
        data["cacert"],
    )


def test_a_ca_secret_of_its_own_holds_no_certificate(p256: ec.EllipticCurvePrivateKey) -> None:
    ca = cert_pem(p256, name="ca")
    for key in ("cacert", "ca.crt"):
        found = parsed(secret({key: ca}, kind=""))  # no type: Opaque, as Kubernetes reads it
        assert isinstance(found, Secret) and not found.has_certificate
        assert found.ca_certificates == ca


def test_string_data_wins_over_data_as_kubernetes_merges_them(
    p256: ec.EllipticCurvePrivateKey,
) -> None:
    chain, key = cert_pem(p256), key_pem(p256)
    doc = yaml.safe_load(secret({"tls.crt": b"not a certificate", "tls.key": key}))
    doc["stringData"] = {"tls.crt": chain.decode()}
    found = parsed(yaml.safe_dump(doc))
    assert isinstance(found, Secret) and found.certificate_chain == chain


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("Opaque", {"password": b"hunter2"}),
        ("Opaque", {"key": b"an api key"}),  # `key` alone is no credential
        ("kubernetes.io/service-account-token", {"ca.crt": b"x", "token": b"t"}),
        ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": b"{}"}),
    ],
)
def test_other_secrets_are_ignored_unread(kind: str, data: dict[str, bytes]) -> None:
    found = parsed(secret(data, kind=kind))
    assert isinstance(found, Other) and found.kind == "Secret"


def _rsa(bits: int) -> Callable[[], Key]:
    return lambda: rsa.generate_private_key(65537, bits)


BAD = [
    ("not-base64", lambda k: {"tls.crt": None, "tls.key": key_pem(k)}, "data['tls.crt']: must be base64"),
    ("not-pem", lambda k: {"tls.crt": b"hello", "tls.key": key_pem(k)}, "data['tls.crt']: not a PEM certificate chain: no '-----BEGIN CERTIFICATE-----' block"),
    ("broken-pem", lambda k: {"tls.crt": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "tls.key": key_pem(k)}, "data['tls.crt']: not a PEM certificate chain: a certificate cannot be read"),
    ("key-in-chain", lambda k: {"tls.crt": cert_pem(k) + key_pem(k), "tls.key": key_pem(k)}, "data['tls.crt']: not a PEM certificate chain: holds PRIVATE KEY besides certificates"),
    ("key-not-pem", lambda k: {"tls.crt": cert_pem(k), "tls.key": b"secret"}, "data['tls.key']: not a PEM private key"),
    ("key-mismatch", lambda k: {"tls.crt": cert_pem(k), "tls.key": key_pem(ec.generate_private_key(ec.SECP256R1()))}, "data['tls.key']: does not match the certificate"),
    ("key-encrypted", lambda k: {"tls.crt": cert_pem(k), "tls.key": key_pem(k, password=b"pw")}, "data['tls.key']: the key is encrypted"),
    ("key-missing", lambda k: {"tls.crt": cert_pem(k)}, "data['tls.key']: required with tls.crt"),
    ("chain-missing", lambda k: {"tls.key": key_pem(k)}, "data['tls.crt']: required with tls.key"),
    ("ca-not-pem", lambda k: {"tls.crt": cert_pem(k), "tls.key": key_pem(k), "ca.crt": b"ca"}, "data['ca.crt']: not PEM CA certificates"),
    ("crl", lambda k: {"tls.crt": cert_pem(k), "tls.key": key_pem(k), "ca.crl": b"crl"}, "data['ca.crl']: not supported: certificate revocation lists"),
    ("ocsp-staple", lambda k: {"tls.crt": cert_pem(k), "tls.key": key_pem(k), "tls.ocsp-staple": b"x"}, "data['tls.ocsp-staple']: not supported: OCSP stapling"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_broken_credential_is_an_error_naming_the_key(
    p256: ec.EllipticCurvePrivateKey, make: Callable[[Key], dict[str, bytes | None]], message: str
) -> None:
    data = make(p256)
    text = secret({k: v for k, v in data.items() if v is not None})
    if None in data.values():
        doc = yaml.safe_load(text)
        doc["data"].update({k: "%%% not base64" for k, v in data.items() if v is None})
        text = yaml.safe_dump(doc)
    problems = errors(text)
    assert any(p.startswith(message) for p in problems), problems


def test_an_empty_tls_secret_needs_its_two_keys() -> None:
    assert errors(secret({})) == [
        "data['tls.crt']: required: a kubernetes.io/tls Secret holds tls.crt and tls.key"
    ]


# Keys of every kind Envoy might be given: istiolite's verdict must be Envoy 1.40's own.
KEYS: dict[str, Callable[[], Any]] = {
    "rsa-1024": _rsa(1024),
    "rsa-2048": _rsa(2048),
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ecdsa-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ecdsa-secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "dsa-2048": lambda: dsa.generate_private_key(2048),
}


def _envoy_takes(tmp_path: Path, chain: bytes, key: bytes) -> bool:
    """Envoy's own check (`--mode validate`) of a TLS listener with this certificate."""
    tls = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificates": [
                {"certificate_chain": {"inline_bytes": base64.b64encode(chain).decode()},
                 "private_key": {"inline_bytes": base64.b64encode(key).decode()}}
            ]
        },
    }  # fmt: skip
    proxy = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    listener = {
        "name": "https",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8443}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "tcp",
                        "typed_config": {"@type": proxy, "stat_prefix": "s", "cluster": "c"},
                    }
                ],
                "transport_socket": {"name": "tls", "typed_config": tls},
            }
        ],
    }
    cluster = {"name": "c", "type": "STATIC", "load_assignment": {"cluster_name": "c"}}
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(
        json.dumps({"static_resources": {"listeners": [listener], "clusters": [cluster]}})
    )
    envoy = ProxySettings().envoy_path()
    ran = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(bootstrap), "--log-level", "critical"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return ran.returncode == 0


@pytest.mark.envoy
@pytest.mark.parametrize("kind", sorted(KEYS))
def test_istiolite_takes_the_keys_envoy_takes(tmp_path: Path, kind: str) -> None:
    key = KEYS[kind]()
    try:
        chain = cert_pem(key)
    except Exception:  # cryptography cannot sign with it: use another key to sign
        chain = cert_pem(key, issuer=ec.generate_private_key(ec.SECP256R1()))
    text = secret({"tls.crt": chain, "tls.key": key_pem(key)})
    [item] = parse_yaml(text)
    assert (item.error is None) == _envoy_takes(tmp_path, chain, key_pem(key)), item.error
