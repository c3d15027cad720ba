"""The webhook's certificate across re-installs: kept while good, renewed from the same CA when
it nears expiry (so the caBundle does not change), and a new CA only when the CA is unusable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509

from istiolite import certs
from istiolite.install import webhookcerts
from istiolite.install.webhookcerts import RENEW_BEFORE, SERVICE_HOST, reconcile, verify

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _data(c: webhookcerts.WebhookCerts) -> dict[str, bytes]:
    return c.secret_data()


def test_a_first_install_issues_a_ca_and_a_certificate_for_istiods_service() -> None:
    decision = reconcile(None, now=NOW)
    assert decision.action == "issued a new CA and serving certificate"
    cert = x509.load_pem_x509_certificate(decision.certs.cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert SERVICE_HOST in names.get_values_for_type(x509.DNSName)
    assert verify(decision.certs.ca_cert, decision.certs.cert, now=NOW) is None


def test_a_valid_secret_is_kept_byte_for_byte() -> None:
    first = reconcile(None, now=NOW).certs
    again = reconcile(_data(first), now=NOW + timedelta(days=100))
    assert again.certs == first
    assert again.action.startswith("kept the existing certificate (valid until ")


def test_a_certificate_near_expiry_is_renewed_from_the_same_ca() -> None:
    first = reconcile(None, now=NOW).certs
    later = NOW + certs.SERVING_VALIDITY - RENEW_BEFORE + timedelta(days=1)
    renewed = reconcile(_data(first), now=later)
    assert renewed.certs.ca_cert == first.ca_cert  # the webhook's caBundle stays the same
    assert renewed.certs.cert != first.cert
    assert renewed.action.startswith("renewed the serving certificate (expires ")
    assert verify(first.ca_cert, renewed.certs.cert, now=later) is None


def test_a_certificate_from_another_ca_is_replaced_by_one_from_the_kept_ca() -> None:
    ours, theirs = reconcile(None, now=NOW).certs, reconcile(None, now=NOW).certs
    mixed = {**_data(ours), "tls.crt": theirs.cert, "tls.key": theirs.key}
    decision = reconcile(mixed, now=NOW)
    assert decision.certs.ca_cert == ours.ca_cert
    assert "not signed by the CA CN=istiolite webhook CA" in decision.action
    assert verify(ours.ca_cert, decision.certs.cert, now=NOW) is None


def test_a_key_that_does_not_belong_to_its_certificate_is_renewed() -> None:
    ours, other = reconcile(None, now=NOW).certs, reconcile(None, now=NOW).certs
    decision = reconcile({**_data(ours), "tls.key": other.key}, now=NOW)
    assert "tls.key does not belong to tls.crt" in decision.action
    assert decision.certs.ca_cert == ours.ca_cert


def test_an_unusable_ca_starts_over_with_a_new_one() -> None:
    ours = _data(reconcile(None, now=NOW).certs)
    for broken, reason in [
        ({**ours, "ca.key": b"garbage"}, "CA unparsable"),
        ({k: v for k, v in ours.items() if k != "ca.crt"}, "CA ca.crt missing"),
        (ours, "CA expires "),  # checked ten years on: the CA itself is near its end
    ]:
        when = NOW + certs.CA_VALIDITY - timedelta(days=1) if broken is ours else NOW
        decision = reconcile(broken, now=when)
        assert reason in decision.action, decision.action
        assert decision.certs.ca_cert != ours["ca.crt"]


def test_verify_names_what_is_wrong() -> None:
    a, b = reconcile(None, now=NOW).certs, reconcile(None, now=NOW).certs
    assert "not signed by the CA" in str(verify(b.ca_cert, a.cert, now=NOW))
    assert "expired" in str(verify(a.ca_cert, a.cert, now=NOW + timedelta(days=400)))
    assert verify(b.ca_cert + a.ca_cert, a.cert, now=NOW) is None  # any CA of a bundle will do
    assert "unparsable" in str(verify(b"nonsense", a.cert, now=NOW))
    ca = certs.generate_ca(now=NOW)
    elsewhere = certs.issue_serving_cert(ca, hosts=["elsewhere.svc"], now=NOW)
    assert verify(ca.cert_pem(), elsewhere.cert_pem(), now=NOW) == f"does not name {SERVICE_HOST}"
