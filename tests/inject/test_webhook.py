"""The webhook server over real TLS on loopback: certificates, reload, malformed reviews."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx2
import pytest

from istiolite import certs
from istiolite.discovery.inject import inject
from istiolite.discovery.inject.webhook import MAX_BODY, CertReloader, WebhookServer
from tests.inject.reviews import MALFORMED, apply_response_patch, body, pod, review
from tests.inject.support import VALUES, ServingFiles, write_serving_files


async def _post(base_url: str, context: ssl.SSLContext, data: bytes) -> httpx2.Response:
    """One request on a fresh connection, so each sees the certificate served right now."""
    async with httpx2.AsyncClient(base_url=base_url, verify=context) as client:
        return await client.post("/inject", content=data)


def _url(webhook: WebhookServer) -> str:
    return f"https://127.0.0.1:{webhook.port}"


async def test_webhook_certificate_verifies_against_the_generated_ca(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post("/inject", content=body(review(pod(), uid="tls-1")))
    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["uid"] == "tls-1"
    assert apply_response_patch(pod(), answer) == inject(pod(), VALUES)


async def test_certificate_is_valid_for_the_service_name_the_apiserver_dials(
    webhook: WebhookServer, serving_files: ServingFiles
) -> None:
    async with httpx2.AsyncClient(verify=serving_files.client_context()) as client:
        response = await client.post(
            f"{_url(webhook)}/inject",
            content=body(review(pod())),
            extensions={"sni_hostname": "istiod.istio-system.svc"},
        )
    assert response.status_code == 200


async def test_a_client_trusting_another_ca_refuses_the_webhook(
    webhook: WebhookServer, tmp_path: Path
) -> None:
    stranger = write_serving_files(tmp_path, ca_name="someone else")
    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await _post(_url(webhook), stranger.client_context(), body(review(pod())))


async def test_a_rotated_certificate_is_served_without_a_restart(
    webhook: WebhookServer, serving_files: ServingFiles, tmp_path: Path
) -> None:
    (tmp_path / "rotated").mkdir()
    rotated = write_serving_files(tmp_path / "rotated")
    certs.write_pem(serving_files.cert_file, rotated.cert_file.read_bytes())
    certs.write_pem(serving_files.key_file, rotated.key_file.read_bytes(), private=True)
    for _ in range(100):  # the server polls every 50 ms
        try:
            response = await _post(_url(webhook), rotated.client_context(), body(review(pod())))
            break
        except httpx2.ConnectError:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the rotated certificate was never served")
    assert response.status_code == 200
    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await _post(_url(webhook), serving_files.client_context(), body(review(pod())))


def test_a_half_rotated_pair_keeps_the_old_pair_serving(
    serving_files: ServingFiles, tmp_path: Path
) -> None:
    reloader = CertReloader(serving_files.cert_file, serving_files.key_file)
    old = reloader.current
    (tmp_path / "next").mkdir()
    rotated = write_serving_files(tmp_path / "next")
    certs.write_pem(serving_files.cert_file, rotated.cert_file.read_bytes())
    assert reloader.reload_if_changed() is False  # new cert, old key: does not load
    assert reloader.current is old
    certs.write_pem(serving_files.key_file, rotated.key_file.read_bytes(), private=True)
    assert reloader.reload_if_changed() is True
    assert reloader.current is not old
    assert reloader.reload_if_changed() is False  # nothing changed since


@pytest.mark.parametrize(("case", "data"), MALFORMED, ids=[name for name, _ in MALFORMED])
async def test_malformed_review_gets_4xx_or_a_denial_with_a_message(
    client: httpx2.AsyncClient, case: str, data: bytes
) -> None:
    response = await client.post("/inject", content=data)
    if response.status_code == 200:
        answer = response.json()["response"]
        assert answer["allowed"] is False, case
        assert answer["status"]["message"].startswith("sidecar injection failed: "), case
        assert "internal error" not in answer["status"]["message"]
    else:
        assert 400 <= response.status_code < 500, case
        assert response.text.startswith("bad AdmissionReview: "), case


def test_there_are_at_least_twenty_malformed_reviews() -> None:
    assert len(MALFORMED) >= 20


async def test_the_server_keeps_serving_after_every_malformed_review(
    client: httpx2.AsyncClient,
) -> None:
    for _, data in MALFORMED:
        await client.post("/inject", content=data)
    response = await client.post("/inject", content=body(review(pod(), uid="after")))
    assert response.status_code == 200
    assert response.json()["response"]["uid"] == "after"
    assert "patch" in response.json()["response"]


async def test_wrong_method_path_and_oversized_body_get_4xx(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/inject")).status_code == 405
    assert (await client.post("/mutate", content=body(review(pod())))).status_code == 404
    too_big = body(review(pod(), padding="x" * MAX_BODY))
    assert (await client.post("/inject", content=too_big)).status_code == 413
    assert (await client.post("/inject", content=body(review(pod())))).status_code == 200


async def test_concurrent_reviews_each_get_their_own_uid(client: httpx2.AsyncClient) -> None:
    uids = [f"uid-{n}" for n in range(20)]
    responses = await asyncio.gather(
        *(client.post("/inject", content=body(review(pod(), uid=uid))) for uid in uids)
    )
    assert [r.json()["response"]["uid"] for r in responses] == uids


async def test_outcomes_are_counted_with_istios_metric_names(
    client: httpx2.AsyncClient, webhook: WebhookServer
) -> None:
    opted_out = pod()
    opted_out["metadata"]["annotations"] = {"sidecar.istio.io/inject": "false"}
    for data in (body(review(pod())), body(review(opted_out)), b"{", b"{"):
        await client.post("/inject", content=data)
    counted = {
        outcome: webhook.metrics.registry.get_sample_value(f"sidecar_injection_{outcome}_total")
        for outcome in ("requests", "success", "skip", "failure")
    }
    assert counted == {"requests": 4, "success": 1, "skip": 1, "failure": 2}
