"""Reading what the services publish: a consumer that collects a topic's events for a test to wait on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition  # type: ignore[import-untyped, unused-ignore]

DEFAULT_WAIT_S: Final = 30.0
_FETCH_TIMEOUT_MS: Final = 200

#: Where reading starts: the first offset, the end as of ``start()``, the first event at or after a
#: time, or given offsets per partition (one topic only; partitions not given start at the beginning).
StartAt = Literal["beginning", "now"] | datetime | Mapping[int, int]


@dataclass(frozen=True)
class CollectedEvent:
    """One Kafka record; ``value`` is the decoded JSON (the text if not JSON, None for a tombstone)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any
    headers: dict[str, bytes]
    timestamp: datetime

    @property
    def type(self) -> str | None:
        """The event's ``type`` field, when the value is an event."""
        return self.value.get("type") if isinstance(self.value, dict) else None

    @classmethod
    def from_record(cls, record: ConsumerRecord[bytes, bytes]) -> CollectedEvent:
        value: Any = None
        if record.value is not None:
            text = record.value.decode(errors="replace")
            try:
                value = json.loads(text)
            except ValueError:
                value = text
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key is not None else None,
            value=value,
            headers={name: bytes(raw) for name, raw in record.headers},
            timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        )


class TopicCollector:
    """Reads every partition of some topics (no consumer group, nothing committed) into ``events``.

    ``async with TopicCollector(bootstrap, "imports.v1") as imports: ...; await imports.wait_for(...)``.
    With the default ``start_at="now"`` the end offsets are fixed when ``start()`` returns, so whatever
    is published afterwards is seen.
    """

    def __init__(
        self, bootstrap_servers: str, topics: str | Sequence[str], *, start_at: StartAt = "now"
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = (topics,) if isinstance(topics, str) else tuple(topics)
        self.start_at = start_at
        self.events: list[CollectedEvent] = []
        self._arrived = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def start(self) -> Self:
        from aiokafka import AIOKafkaConsumer

        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            await self._seek(consumer, partitions)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._reader = asyncio.create_task(self._read(consumer), name=f"collect {','.join(self.topics)}")
        return self

    async def _partitions(self) -> list[TopicPartition]:
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_topics(list(self.topics))
        finally:
            await admin.close()
        partitions: list[TopicPartition] = []
        for topic in described:
            if topic["error_code"] != 0 or not topic["partitions"]:
                raise LookupError(f"topic {topic['topic']!r} does not exist on {self.bootstrap_servers}")
            partitions.extend(TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"])
        return sorted(partitions)

    async def _seek(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        if self.start_at == "beginning":
            await consumer.seek_to_beginning(*partitions)
            return
        if isinstance(self.start_at, Mapping):
            if len(self.topics) != 1:
                raise ValueError("offsets per partition need exactly one topic")
            for partition in partitions:
                consumer.seek(partition, self.start_at.get(partition.partition, 0))
            return
        ends = await consumer.end_offsets(partitions)
        if self.start_at == "now":
            for partition, offset in ends.items():
                consumer.seek(partition, offset)
            return
        since_ms = int(self.start_at.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for partition in partitions:
            at = found.get(partition)
            consumer.seek(partition, at.offset if at is not None else ends[partition])

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
                if batches:
                    async with self._arrived:
                        for records in batches.values():
                            self.events.extend(CollectedEvent.from_record(r) for r in records)
                        self._arrived.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._failure = error
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_for(
        self,
        predicate: Callable[[CollectedEvent], bool] | None = None,
        *,
        count: int = 1,
        timeout_s: float = DEFAULT_WAIT_S,
    ) -> list[CollectedEvent]:
        """Wait until ``count`` collected events satisfy ``predicate`` (any event when None); return them."""

        def matching() -> list[CollectedEvent]:
            return [e for e in self.events if predicate is None or predicate(e)]

        deadline = time.monotonic() + timeout_s
        async with self._arrived:
            while len(found := matching()) < count:
                if self._failure is not None:
                    raise RuntimeError(f"reading {self.topics} failed") from self._failure
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} matching events on {self.topics} after {timeout_s:.0f} s;"
                        f" {len(self.events)} collected: {[(e.type, e.key) for e in self.events[-10:]]}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            return found

    async def wait_for_type(
        self, event_type: str, *, count: int = 1, timeout_s: float = DEFAULT_WAIT_S
    ) -> list[CollectedEvent]:
        """``wait_for`` events whose ``type`` is ``event_type``."""
        return await self.wait_for(lambda e: e.type == event_type, count=count, timeout_s=timeout_s)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
