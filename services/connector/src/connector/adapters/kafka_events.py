"""Publishing the connector's events on Kafka through the shared runtime."""

from __future__ import annotations

from contracts.events import Event
from contracts.runtime.kafka import publish_event
from faststream.kafka import KafkaBroker


class KafkaEventPublisher:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, topic: str, event: Event) -> None:
        await publish_event(self._broker, topic, event)
