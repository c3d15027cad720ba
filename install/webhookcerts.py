"""The injection webhook's TLS: a private CA and a serving certificate for istiod's Service.

The kube-apiserver calls the webhook at `istiod.istio-system.svc` and trusts only the CA in the
MutatingWebhookConfiguration's `caBundle`, so the certificate, its key and that CA travel
together in the Secret `istiod-webhook-certs`.

What a re-install does with an existing Secret, and why:
- everything valid: keep it all, so applying the same manifests again changes nothing;
- the serving certificate invalid or expiring within `RENEW_BEFORE`: issue a new one from the
  *same* CA. The `caBundle` does not change, and pilot-discovery reloads the files the kubelet
  swaps in, so no request fails while old and new pods overlap in a rolling update;
- the CA itself unusable (missing, unparsable, expiring): start over with a new CA. Only then
  does the `caBundle` change.

Everything here is pure: the Secret's data in, certificates out, `now` given by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from istiolite import certs

SERVICE_HOST = "istiod.istio-system.svc"  # the name the kube-apiserver verifies
HOSTS = (SERVICE_HOST, "istiod.istio-system", "istiod")
RENEW_BEFORE = timedelta(days=30)
CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"


@dataclass(frozen=True, slots=True)
class WebhookCerts:
    """PEM files of the Secret. The CA key is kept so a renewal keeps the `caBundle`."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    def secret_data(self) -> dict[str, bytes]:
        return {CA_CERT: self.ca_cert, CA_KEY: self.ca_key, TLS_CERT: self.cert, TLS_KEY: self.key}


@dataclass(frozen=True, slots=True)
class Decision:
    certs: WebhookCerts
    action: str  # what happened, for the installer's output


def issue(*, now: datetime, ca: certs.KeyPair | None = None) -> WebhookCerts:
    """A serving certificate for istiod's Service, from `ca` or from a new CA."""
    ca = ca or certs.generate_ca("istiolite webhook CA", now=now)
    serving = certs.issue_serving_cert(ca, hosts=HOSTS, now=now)
    return WebhookCerts(ca.cert_pem(), ca.key_pem(), serving.cert_pem(), serving.key_pem())


def reconcile(existing: Mapping[str, bytes] | None, *, now: datetime) -> Decision:
    """What an install puts into the Secret, given what the Secret holds now (None: no Secret)."""
    if existing is None:
        return Decision(issue(now=now), "issued a new CA and serving certificate")
    ca, ca_problem = _load_pair(existing, CA_CERT, CA_KEY)
    if ca is not None:
        ca_problem = _expiry_problem(ca.cert, now=now, renew_before=RENEW_BEFORE)
    if ca is None or ca_problem is not None:
        return Decision(issue(now=now), f"issued a new CA and serving certificate: CA {ca_problem}")
    serving, problem = _load_pair(existing, TLS_CERT, TLS_KEY)
    if serving is not None:
        problem = serving_problem(ca.cert, serving.cert, now=now, renew_before=RENEW_BEFORE)
    if serving is None or problem is not None:
        renewed = issue(now=now, ca=ca)
        return Decision(renewed, f"renewed the serving certificate ({problem}); CA kept")
    kept = WebhookCerts(*(existing[k] for k in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)))
    return Decision(kept, f"kept the existing certificate (valid until {_until(serving.cert)})")


def verify(ca_bundle: bytes, cert_pem: bytes, *, now: datetime) -> str | None:
    """Why a client trusting `ca_bundle` would reject `cert_pem` for the webhook; None if not."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cas = x509.load_pem_x509_certificates(ca_bundle)
    except ValueError as e:
        return f"unparsable certificate: {e}"
    problems = [serving_problem(ca, cert, now=now) for ca in cas]
    return None if None in problems else "; ".join(p for p in problems if p)


def serving_problem(
    ca: x509.Certificate,
    cert: x509.Certificate,
    *,
    now: datetime,
    renew_before: timedelta = timedelta(0),
) -> str | None:
    """Why `cert` is not a good webhook certificate signed by `ca`; None if it is."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return f"not signed by the CA {ca.subject.rfc4514_string()}"
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    if SERVICE_HOST not in names.get_values_for_type(x509.DNSName):
        return f"does not name {SERVICE_HOST}"
    return _expiry_problem(cert, now=now, renew_before=renew_before)


def _expiry_problem(
    cert: x509.Certificate, *, now: datetime, renew_before: timedelta
) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if now >= cert.not_valid_after_utc:
        return f"expired {_until(cert)}"
    if now + renew_before >= cert.not_valid_after_utc:
        return f"expires {_until(cert)}"
    return None


def _load_pair(
    data: Mapping[str, bytes], cert_key: str, key_key: str
) -> tuple[certs.KeyPair | None, str | None]:
    try:
        cert = x509.load_pem_x509_certificate(data[cert_key])
        key = serialization.load_pem_private_key(data[key_key], password=None)
    except KeyError as e:
        return None, f"{e.args[0]} missing"
    except ValueError as e:
        return None, f"unparsable: {e}"
    if not isinstance(key, ec.EllipticCurvePrivateKey) or _public(key) != _public_of(cert):
        return None, f"{key_key} does not belong to {cert_key}"
    return certs.KeyPair(cert, key), None


def _public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_of(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _until(cert: x509.Certificate) -> str:
    return f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
