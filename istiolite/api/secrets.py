"""Kubernetes Secrets that hold a gateway's TLS credential, read and checked as Envoy will.

A Gateway server's `credentialName` names a Secret in the gateway workload's namespace;
pilot-discovery sends its certificate chain and key (and, for MUTUAL TLS, the CA that signs
client certificates) to the gateway's Envoy over SDS. Istio reads two forms, and so does
istiolite:

- `kubernetes.io/tls`: `tls.crt` (the chain, leaf first), `tls.key`, optionally `ca.crt`;
- Istio's generic form, in an Opaque Secret: `cert`, `key`, optionally `cacert`.

The CA may also be a Secret of its own named `<credentialName>-cacert` holding `ca.crt` or
`cacert`. Everything is checked here, where the error can name the Secret and the key, rather
than by Envoy, which would reject the whole listener: PEM, a key Envoy takes (RSA of 2048 bits
or more, ECDSA on P-256, P-384 or P-521, Ed25519), unencrypted, and matching the leaf
certificate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where used: cryptography is heavy (and brings `socket`), and most readers of
    # the API (kube-inject, the webhook's mutation) never parse a credential.
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

TLS_TYPE = "kubernetes.io/tls"
OPAQUE_TYPE = "Opaque"
CA_SECRET_SUFFIX = "-cacert"
UNSUPPORTED_KEYS: Mapping[str, str] = {
    "ca.crl": "certificate revocation lists",
    "crl": "certificate revocation lists",
    "tls.ocsp-staple": "OCSP stapling",
}
MIN_RSA_BITS = 2048
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ACCEPTED_KEYS = "RSA of 2048 bits or more, ECDSA on P-256, P-384 or P-521, or Ed25519"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")

Problems = Iterator[tuple[str, str]]  # (data key, message)


def ca_secret_name(credential_name: str) -> str:
    """The Secret Istio also reads a credential's CA from: `<credentialName>-cacert`."""
    return credential_name + CA_SECRET_SUFFIX


def is_credential(secret_type: str, keys: frozenset[str]) -> bool:
    """Whether a Secret is meant as a TLS credential, and so must be one.

    Every kubernetes.io/tls Secret; an Opaque Secret with Kubernetes' or Istio's TLS keys
    (`cert` and `key` together: alone they are common names for other things). Other types
    (a service account token also holds a `ca.crt`) are not.
    """
    if secret_type == TLS_TYPE:
        return True
    if secret_type != OPAQUE_TYPE:
        return False
    return bool(keys & {"tls.crt", "tls.key", "ca.crt", "cacert"}) or {"cert", "key"} <= keys


def credential_keys(keys: frozenset[str]) -> tuple[str, str, str]:
    """Which keys hold (chain, key, CA), in Istio's order: the generic form's `cert` and `key`
    when both are there, else `tls.crt` and `tls.key`; `cacert`, else `ca.crt`."""
    chain, key = ("cert", "key") if {"cert", "key"} <= keys else ("tls.crt", "tls.key")
    return chain, key, "cacert" if "cacert" in keys else "ca.crt"


def check_credential(secret_type: str, data: Mapping[str, bytes]) -> Problems:
    """Every problem of a credential Secret's data, by key."""
    for key in sorted(data.keys() & UNSUPPORTED_KEYS.keys()):
        yield key, f"not supported: {UNSUPPORTED_KEYS[key]}"
    chain_key, key_key, ca_key = credential_keys(frozenset(data))
    if (chain_key in data) != (key_key in data):
        missing, present = (key_key, chain_key) if chain_key in data else (chain_key, key_key)
        yield missing, f"required with {present}: a certificate chain and its private key"
    elif secret_type == TLS_TYPE and chain_key not in data:
        yield chain_key, f"required: a {TLS_TYPE} Secret holds {chain_key} and {key_key}"
    chain: list[x509.Certificate] = []
    if chain_key in data:
        try:
            chain = certificates(data[chain_key])
        except ValueError as error:
            yield chain_key, f"not a PEM certificate chain: {error}"
    if key_key in data:
        problem = private_key_problem(data[key_key], chain[0] if chain else None)
        if problem:
            yield key_key, problem
    if ca_key in data:
        try:
            certificates(data[ca_key])
        except ValueError as error:
            yield ca_key, f"not PEM CA certificates: {error}"


def certificates(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, in order; ValueError says what is wrong."""
    from cryptography import x509  # noqa: PLC0415 (see TYPE_CHECKING above)

    blocks = _PEM_BLOCK.findall(pem)
    if not blocks:
        raise ValueError("no '-----BEGIN CERTIFICATE-----' block")
    others = sorted({b.decode() for b in blocks if b != b"CERTIFICATE"})
    if others:
        raise ValueError(f"holds {', '.join(others)} besides certificates")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise ValueError(f"a certificate cannot be read ({error})") from None


def private_key_problem(pem: bytes, leaf: x509.Certificate | None) -> str | None:
    """Why Envoy would refuse this key (with this leaf certificate), or None."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        return "the key is encrypted; Envoy needs it unencrypted"
    except (ValueError, UnsupportedAlgorithm) as error:
        return f"not a PEM private key: {error}"
    problem = _key_type_problem(key)
    if problem:
        return problem
    if leaf is not None and _spki(leaf.public_key()) != _spki(key.public_key()):
        return "does not match the certificate (the first of the chain): it is another key's"
    return None


def _key_type_problem(key: object) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415

    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            return f"an RSA key of {key.key_size} bits; Envoy takes {_ACCEPTED_KEYS}"
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in EC_CURVES:
            return f"an ECDSA key on {key.curve.name}; Envoy takes {_ACCEPTED_KEYS}"
        return None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "unknown"
    return f"a key of type {kind}; Envoy takes {_ACCEPTED_KEYS}"


def _spki(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
