"""Kubernetes Events about objects discovery refused, so `kubectl describe` shows why.

Recording is fire-and-forget from a queue: a reflector must never wait on the API server to
report a problem (it may be the API server that is failing), and a burst of bad objects must
not grow memory without bound, so the queue is bounded and the overflow only logged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime

from lightkube import AsyncClient
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from istiolite.discovery.kube.reflector import Raw

COMPONENT = "pilot-discovery"
REASON_INVALID = "InvalidConfiguration"
# The API server keeps event messages short; a resource with many problems is cut here.
MAX_MESSAGE = 1024

log = logging.getLogger(__name__)


def warning_event(involved: Raw, *, reason: str, message: str) -> Event:
    meta = involved.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
    now = datetime.now(UTC)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return Event(
        # client-go's naming: the object's name and a unique suffix.
        metadata=ObjectMeta(name=f"{name}.{time.time_ns():x}", namespace=namespace),
        involvedObject=ObjectReference(
            apiVersion=involved.get("apiVersion"),
            kind=involved.get("kind"),
            name=name,
            namespace=namespace,
            uid=meta.get("uid"),
            resourceVersion=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message,
        type="Warning",
        source=EventSource(component=COMPONENT, host=socket.gethostname()),
        firstTimestamp=now,
        lastTimestamp=now,
        count=1,
    )


class EventRecorder:
    def __init__(self, client: AsyncClient, *, capacity: int = 256) -> None:
        self.client = client
        self.queue: asyncio.Queue[Event] = asyncio.Queue(capacity)

    def warn(self, involved: Raw, *, reason: str, message: str) -> None:
        try:
            self.queue.put_nowait(warning_event(involved, reason=reason, message=message))
        except asyncio.QueueFull:
            log.warning("event queue full; not recording %s: %s", reason, message)

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self.client.create(event)
            except Exception as e:  # an event is best effort; the log line was written already
                log.warning("could not record event %s: %s", event.reason, e)
