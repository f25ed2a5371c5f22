"""Queues verified webhook events on the importer's internal sync topic, keyed by processor account.

Webhooks have a producer of their own (aiokafka's, as the importer's bulk publisher), not the
service's faststream broker: a webhook is one small message sent on the request's path, and the
broker's publish ran its middlewares (the Prometheus one, the pipeline's) around each. The
producer is idempotent with ``acks=all`` and waits up to :data:`LINGER_MS` for concurrent webhooks
to share a produce request; each request still answers only once the broker has its event.
"""

from __future__ import annotations

from typing import Final

from contracts.runtime.kafka import CONTENT_TYPE_JSON, HEADER_EVENT_TYPE, DurableProducer
from contracts.sync import SYNC_EVENTS_TOPIC, ProcessorEventReceived

#: How long a send waits for others to share its produce request.
LINGER_MS: Final = 2
_HEADERS: Final = [("content-type", CONTENT_TYPE_JSON.encode())]


class KafkaSyncEventQueue(DurableProducer):
    linger_ms = LINGER_MS

    async def enqueue(self, event: ProcessorEventReceived) -> None:
        """Returns once the broker has the event (all in-sync replicas)."""
        await self.producer.send_and_wait(
            SYNC_EVENTS_TOPIC,
            value=event.model_dump_json().encode(),
            key=event.key(),
            headers=[(HEADER_EVENT_TYPE, event.type.encode()), *_HEADERS],
        )
