"""Fixtures for the injection tests: values, a CA with a serving pair, a running webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from istiolite.discovery.inject import SidecarValues
from istiolite.discovery.inject.webhook import WebhookServer
from tests.inject.support import VALUES, ServingFiles, write_serving_files


@pytest.fixture
def values() -> SidecarValues:
    return VALUES


@pytest.fixture
def serving_files(tmp_path: Path) -> ServingFiles:
    return write_serving_files(tmp_path)


@pytest.fixture
async def webhook(serving_files: ServingFiles) -> AsyncIterator[WebhookServer]:
    server = WebhookServer(
        VALUES,
        cert_file=serving_files.cert_file,
        key_file=serving_files.key_file,
        host="127.0.0.1",
        port=0,
        reload_interval=0.05,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def client(
    webhook: WebhookServer, serving_files: ServingFiles
) -> AsyncIterator[httpx2.AsyncClient]:
    """A client that trusts only the test CA, as the kube-apiserver trusts the caBundle."""
    async with httpx2.AsyncClient(
        base_url=f"https://127.0.0.1:{webhook.port}", verify=serving_files.client_context()
    ) as client:
        yield client
