"""Publishing in bulk: canonical records on ``billing.*.v1`` and page requests, from one producer.

Records go out thousands a second, so they bypass faststream's per-message middleware and use an
idempotent aiokafka producer directly: every send of a batch is queued at once and awaited
together, so the producer packs them into few requests. Import events, a few per import, go through
the shared broker (:func:`contracts.runtime.kafka.publish_event`) with tracing and metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from contracts import topics
from contracts.events import Event
from contracts.records import CanonicalRecord
from contracts.runtime.kafka import CONTENT_TYPE_JSON, DurableProducer, publish_event
from faststream.kafka import KafkaBroker
from opentelemetry import propagate

from importer.domain.page_requests import PAGE_REQUESTS_TOPIC, PageRequestMessage
from importer.domain.planning import PlannedPage

HEADER_RECORD_TYPE: Final = "record-type"
_JSON: Final = ("content-type", CONTENT_TYPE_JSON.encode())
#: Producer batching: a page's records leave in one request per partition.
LINGER_MS: Final = 5
MAX_BATCH_BYTES: Final = 256 * 1024


class KafkaPublisher(DurableProducer):
    linger_ms = LINGER_MS
    max_batch_size = MAX_BATCH_BYTES

    async def send_raw(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """One message as it is (a dead letter); returns once the broker has it."""
        await self.producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def publish_records(self, records: Sequence[CanonicalRecord]) -> None:
        trace_headers = _trace_headers()
        sends = [
            await self.producer.send(
                record.topic,
                value=record.model_dump_json().encode(),
                key=record.key().encode(),
                headers=[_JSON, (HEADER_RECORD_TYPE, type(record).__name__.encode()), *trace_headers],
            )
            for record in records
        ]
        await asyncio.gather(*sends)

    async def publish_tombstones(self, keys: Sequence[tuple[str, str]]) -> None:
        """A null value for each ``(topic, key)``, sent together; returns once the broker has all."""
        sends = [await self.producer.send(topic, value=None, key=key.encode()) for topic, key in keys]
        await asyncio.gather(*sends)

    async def publish_pages(self, account_id: str, pages: Sequence[PlannedPage]) -> None:
        # The import's trace continues in whichever process fetches the page.
        headers = [_JSON, *_trace_headers()]
        sends = []
        for page in pages:
            message = PageRequestMessage.of(account_id, page)
            sends.append(
                await self.producer.send(
                    PAGE_REQUESTS_TOPIC,
                    value=message.model_dump_json().encode(),
                    key=message.key(),
                    headers=headers,
                )
            )
        await asyncio.gather(*sends)


def _trace_headers() -> list[tuple[str, bytes]]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


class BrokerEventPublisher:
    """Import events on ``imports.v1`` and ``AccountDataErased`` on ``connections.v1``, through the
    service's faststream broker."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish_import_event(self, event: Event) -> None:
        await publish_event(self._broker, topics.IMPORTS, event)

    async def publish_connection_event(self, event: Event) -> None:
        await publish_event(self._broker, topics.CONNECTIONS, event)
