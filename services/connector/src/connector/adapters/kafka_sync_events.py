"""Queues verified webhook events on the importer's internal sync topic, keyed by processor account."""

from __future__ import annotations

from contracts.runtime.kafka import CONTENT_TYPE_JSON, HEADER_EVENT_TYPE
from contracts.sync import SYNC_EVENTS_TOPIC, ProcessorEventReceived
from faststream.kafka import KafkaBroker


class KafkaSyncEventQueue:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def enqueue(self, event: ProcessorEventReceived) -> None:
        await self._broker.publish(
            event.model_dump_json().encode(),
            topic=SYNC_EVENTS_TOPIC,
            key=event.key(),
            headers={HEADER_EVENT_TYPE: event.type, "content-type": CONTENT_TYPE_JSON},
        )
