"""Publishing in bulk: canonical records on ``billing.*.v1`` and page requests, from one producer.

Records go out thousands a second, so they bypass faststream's per-message middleware and use an
idempotent aiokafka producer directly: every send of a batch is queued at once and awaited
together, so the producer packs them into few requests. Import events, a few per import, go through
the shared broker (:func:`contracts.runtime.kafka.publish_event`) with tracing and metrics.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Final

from contracts import topics
from contracts.events import Event
from contracts.records import CanonicalRecord
from contracts.runtime.kafka import CONTENT_TYPE_JSON, DurableProducer, publish_event
from faststream.kafka import KafkaBroker
from opentelemetry import propagate

from importer.domain.page_requests import PAGE_REQUESTS_TOPIC, PageRequestMessage, request_key
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
        producer = self.producer
        trace_headers = _trace_headers()
        headers_by_type: dict[type[CanonicalRecord], list[tuple[str, bytes]]] = {}
        partitions_by_topic: dict[str, list[int]] = {}
        sends = []
        for record in records:
            kind = type(record)
            headers = headers_by_type.get(kind)
            if headers is None:
                headers = [_JSON, (HEADER_RECORD_TYPE, kind.__name__.encode()), *trace_headers]
                headers_by_type[kind] = headers
            topic = record.topic
            partitions = partitions_by_topic.get(topic)
            if partitions is None:
                partitions = sorted(await producer.partitions_for(topic))
                partitions_by_topic[topic] = partitions
            key = record.key().encode()
            sends.append(
                await producer.send(
                    topic,
                    value=record.__pydantic_serializer__.to_json(record),
                    key=key,
                    partition=key_partition(key, partitions),
                    headers=headers,
                )
            )
        await all_delivered(sends)

    async def publish_tombstones(self, keys: Sequence[tuple[str, str]]) -> None:
        """A null value for each ``(topic, key)``, sent together; returns once the broker has all."""
        sends = [await self.producer.send(topic, value=None, key=key.encode()) for topic, key in keys]
        await all_delivered(sends)

    async def publish_pages(
        self, account_id: str, pages: Sequence[PlannedPage], *, partition: int | None = None
    ) -> None:
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
                    partition=partition,
                    headers=headers,
                )
            )
        await all_delivered(sends)

    async def request_partition(self, page: PlannedPage) -> int:
        """Where ``publish_pages`` sends the page's request without ``partition``: the default
        partitioner's choice for its key among the topic's partitions, which the producer's
        metadata keeps (asked of the broker the first time only)."""
        partitions = await self.producer.partitions_for(PAGE_REQUESTS_TOPIC)
        return key_partition(request_key(page.page_id), sorted(partitions))


async def all_delivered(sends: list[asyncio.Future[object]]) -> None:
    """Wait for every send; the first failure is raised (as ``gather`` would), the others' read.

    A batch's sends are resolved together, so after the first wait the others are done and are
    read without another suspension or a callback each."""
    try:
        for send in sends:
            await send
    except BaseException:
        for send in sends:  # each read, so that none is reported as never retrieved
            if send.done():
                _read_outcome(send)
            else:
                send.add_done_callback(_read_outcome)
        raise


def _read_outcome(send: asyncio.Future[object]) -> None:
    if not send.cancelled():
        send.exception()


_MURMUR_M: Final = 0x5BD1E995
_MASK_32: Final = 0xFFFFFFFF
#: Words of a key whose hash state is remembered: the keys of one account at one processor share
#: their start (``account_id:processor:``), and the state after it depends only on it and the length.
_PREFIX_WORDS: Final = 6
_MAX_PREFIXES: Final = 4096
_prefix_states: dict[tuple[bytes, int], int] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a key, as every Kafka client's default partitioner computes it
    (aiokafka's own, word for word, in fewer operations: it costs ~10 us a key there), the state
    after the key's first words remembered for the next key starting with them at that length."""
    length = len(data)
    words = length >> 2
    prefix = min(words, _PREFIX_WORDS)
    start = (data[: prefix << 2], length)
    h = _prefix_states.get(start)
    if h is None:
        h = 0x9747B28C ^ length
        for word in struct.unpack_from(f"<{prefix}I", data):
            k = (word * _MURMUR_M) & _MASK_32
            k ^= k >> 24
            h = ((h * _MURMUR_M) ^ (k * _MURMUR_M)) & _MASK_32
        if len(_prefix_states) >= _MAX_PREFIXES:
            _prefix_states.clear()
        _prefix_states[start] = h
    for word in struct.unpack_from(f"<{words - prefix}I", data, prefix << 2):
        k = (word * _MURMUR_M) & _MASK_32
        k ^= k >> 24
        h = ((h * _MURMUR_M) ^ (k * _MURMUR_M)) & _MASK_32
    extra = length & 3
    if extra:
        tail = words << 2
        if extra >= 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _MURMUR_M) & _MASK_32
    h ^= h >> 13
    h = (h * _MURMUR_M) & _MASK_32
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition the default partitioner gives ``key`` among a topic's ``partitions``, so a
    record lands where every other producer's message of the same key (a tombstone) lands."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


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
