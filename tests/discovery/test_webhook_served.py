"""pilot-discovery serves the injection webhook on 15017 when given a certificate."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import httpx2

from istiolite.testing.mesh import Discovery, free_port
from tests.inject.reviews import review
from tests.inject.support import write_serving_files

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "reviews-v1", "namespace": "default", "labels": {"app": "reviews"}},
    "spec": {
        "containers": [{"name": "reviews", "image": "bookinfo", "ports": [{"containerPort": 9080}]}]
    },
}


def test_discovery_answers_admission_reviews_over_tls_with_a_patch(
    work: Path, config_dir: Path
) -> None:
    files = write_serving_files(work)
    port = free_port()
    discovery = Discovery(
        config_dir,
        work,
        extra_args=[
            f"--webhook-addr=127.0.0.1:{port}",
            f"--webhook-cert={files.cert_file}",
            f"--webhook-key={files.key_file}",
            "--proxy-image=registry.example/proxy:test",
            "--proxy-image-pull-policy=Always",
        ],
    ).start()
    try:
        context = ssl.create_default_context(cafile=files.ca_file)
        response = httpx2.post(
            f"https://127.0.0.1:{port}/inject", json=review(POD, uid="abc"), verify=context
        )
        assert response.status_code == 200, response.text
        answer = response.json()["response"]
        assert answer["uid"] == "abc" and answer["allowed"] is True
        assert answer["patchType"] == "JSONPatch"
        patch = base64.b64decode(answer["patch"]).decode()
        assert "registry.example/proxy:test" in patch
        assert '"imagePullPolicy": "Always"' in patch
        counters = discovery.metrics()
        assert any(k.startswith("sidecar_injection") and v > 0 for k, v in counters.items()), (
            counters
        )
    finally:
        discovery.stop()
