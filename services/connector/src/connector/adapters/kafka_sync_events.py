"""Queues verified webhook events on the importer's internal sync topic, keyed by processor account.

Webhooks have a producer of their own (aiokafka's, as the importer's bulk publisher), not the
service's faststream broker: a webhook is one small message sent on the request's path, and the
broker's publish ran its middlewares (the Prometheus one, the pipeline's) around each. The
producer is idempotent with ``acks=all`` and waits up to :data:`LINGER_MS` for concurrent webhooks
to share a produce request; each request still answers only once the broker has its event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from contracts.runtime.kafka import CONTENT_TYPE_JSON, HEADER_EVENT_TYPE, durable_producer
from contracts.sync import SYNC_EVENTS_TOPIC, ProcessorEventReceived

#: How long a send waits for others to share its produce request.
LINGER_MS: Final = 2
_HEADERS: Final = [("content-type", CONTENT_TYPE_JSON.encode())]


class KafkaSyncEventQueue:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "connector",
        security: Mapping[str, Any] | None = None,
    ) -> None:
        """``security``: aiokafka's authentication and TLS arguments
        (``contracts.runtime.kafka.client_security``), the same as the service's broker."""
        self._bootstrap_servers = bootstrap_servers
        self._client_id = f"{client_id}-webhooks"
        self._security = dict(security or {})
        self._started: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Created here: an aiokafka producer belongs to the running event loop.
        producer = durable_producer(
            self._bootstrap_servers, client_id=self._client_id, security=self._security, linger_ms=LINGER_MS
        )
        await producer.start()
        self._started = producer

    async def stop(self) -> None:
        if self._started is not None:
            await self._started.stop()
            self._started = None

    async def enqueue(self, event: ProcessorEventReceived) -> None:
        """Returns once the broker has the event (all in-sync replicas)."""
        if self._started is None:
            raise RuntimeError("the webhook queue is not started")
        await self._started.send_and_wait(
            SYNC_EVENTS_TOPIC,
            value=event.model_dump_json().encode(),
            key=event.key(),
            headers=[(HEADER_EVENT_TYPE, event.type.encode()), *_HEADERS],
        )
