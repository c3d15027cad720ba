"""The CA and serving certificates the webhook (and later the installer) uses."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from istiolite import certs


def test_serving_certificate_names_every_host_and_is_signed_by_the_ca() -> None:
    ca = certs.generate_ca()
    serving = certs.issue_serving_cert(ca, hosts=["istiod.istio-system.svc", "10.0.0.7"])
    names = serving.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["istiod.istio-system.svc"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    serving.cert.verify_directly_issued_by(ca.cert)
    usage = serving.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_the_ca_may_sign_leaves_only_and_the_leaf_may_sign_nothing() -> None:
    ca = certs.generate_ca()
    serving = certs.issue_serving_cert(ca, hosts=["localhost"])
    ca_limits = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    leaf_limits = serving.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (ca_limits.ca, ca_limits.path_length) == (True, 0)
    assert leaf_limits.ca is False


def test_certificates_are_valid_from_a_little_before_now() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    serving = certs.issue_serving_cert(certs.generate_ca(now=now), hosts=["a"], now=now)
    assert serving.cert.not_valid_before_utc < now
    assert serving.cert.not_valid_after_utc > now + timedelta(days=364)


def test_a_serving_certificate_needs_a_host() -> None:
    with pytest.raises(ValueError, match="at least one"):
        certs.issue_serving_cert(certs.generate_ca(), hosts=[])


def test_written_keys_are_private_and_files_are_replaced_whole(tmp_path: Path) -> None:
    pair = certs.issue_serving_cert(certs.generate_ca(), hosts=["localhost"])
    key_file, cert_file = tmp_path / "tls.key", tmp_path / "tls.crt"
    certs.write_pem(key_file, pair.key_pem(), private=True)
    certs.write_pem(cert_file, pair.cert_pem())
    certs.write_pem(cert_file, pair.cert_pem())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_file.stat().st_mode) == 0o644
    assert x509.load_pem_x509_certificate(cert_file.read_bytes()) == pair.cert
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls.crt", "tls.key"]
