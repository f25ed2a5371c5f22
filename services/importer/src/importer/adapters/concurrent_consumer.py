"""A Kafka consumer that handles many messages at once, inside partitions too, committing safely.

A page takes a quarter of a second at the processor, so keeping the rate limit busy needs dozens of
pages in flight, more than the topic has partitions: faststream's consumers handle a partition's
messages one after another. This one hands up to ``concurrency`` messages to concurrent tasks and
commits each partition only up to its oldest message not yet handled, so a crash redelivers every
message not finished and none that was (at-least-once, with handlers idempotent).

Retries and dead letters follow the shared policy (:class:`contracts.runtime.dead_letter.RetryPolicy`,
the same ``x-dlq-*`` headers): a message failing after its retries goes to ``<topic>.dlq`` while the
rest of its partition keeps flowing, an ``on_dead_letter`` callback learns of it, and it is then
committed like any handled message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiokafka import (
    AIOKafkaConsumer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from contracts import topics
from contracts.errors import PermanentFailure
from contracts.runtime.dead_letter import (
    ERROR_TEXT_LIMIT,
    HEADER_ERROR,
    DeadLetter,
    RetryPolicy,
    dead_letter_headers,
)
from contracts.runtime.logging import get_logger, redact_text
from contracts.runtime.metrics import DEAD_LETTERED, HANDLER_RETRIES
from pydantic import ValidationError


class Record(Protocol):
    """What a handler reads of a consumed message (aiokafka's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


Handler = Callable[[Record], Awaitable[None]]
OnDeadLetter = Callable[[DeadLetter], Awaitable[None]]

_NOT_RETRYABLE: Final = (PermanentFailure, ValidationError, json.JSONDecodeError, UnicodeDecodeError)
COMMIT_INTERVAL_S: Final = 0.2
REVOKE_WAIT_S: Final = 20.0
STOP_WAIT_S: Final = 10.0
DEAD_LETTER_PUBLISH_ATTEMPTS: Final = 5

_log = get_logger(__name__)


class RawSender(Protocol):
    async def send_raw(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None: ...


@dataclass(slots=True)
class _PartitionProgress:
    """Offsets of one partition: handed out up to ``next_offset``; those in ``in_flight`` unfinished."""

    next_offset: int = -1
    in_flight: set[int] = field(default_factory=set)
    committed: int = -1

    def committable(self) -> int:
        return min(self.in_flight) if self.in_flight else self.next_offset


class ConcurrentConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        client_id: str,
        handler: Handler,
        dead_letter_sender: RawSender,
        concurrency: int,
        retry: RetryPolicy | None = None,
        on_dead_letter: OnDeadLetter | None = None,
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        self._topic = topic
        self._group_id = group_id
        self._handler = handler
        self._sender = dead_letter_sender
        self._concurrency = concurrency
        self._retry = retry or RetryPolicy()
        self._on_dead_letter = on_dead_letter
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            max_poll_interval_ms=300_000,
            **(consumer_options or {}),
        )
        self._progress: dict[TopicPartition, _PartitionProgress] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_partitions: dict[asyncio.Task[None], TopicPartition] = {}
        self._slot_freed = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._consumer.subscribe([self._topic], listener=self)
        await self._consumer.start()
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"consume-{self._topic}")
        self._commit_task = asyncio.create_task(self._commit_loop(), name=f"commit-{self._topic}")

    async def stop(self) -> None:
        """Stop fetching, give running handlers a moment to finish, commit what finished, leave."""
        self._stopping = True
        for task in (self._loop_task, self._commit_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_S)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._commit()
        await self._consumer.stop()

    # --- fetching and handing out ------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while not self._stopping:
            free = self._concurrency - len(self._tasks)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=free)
            except KafkaError as error:
                _log.warning("consumer.fetch_failed", topic=self._topic, error=str(error))
                await asyncio.sleep(1.0)
                continue
            for partition, records in batches.items():
                progress = self._progress.setdefault(partition, _PartitionProgress())
                for record in records:
                    progress.in_flight.add(record.offset)
                    progress.next_offset = max(progress.next_offset, record.offset + 1)
                    task = asyncio.create_task(self._handle(partition, record))
                    self._tasks.add(task)
                    self._task_partitions[task] = partition
                    task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._task_partitions.pop(task, None)
        self._slot_freed.set()

    async def _handle(self, partition: TopicPartition, record: Record) -> None:
        try:
            await self._handle_with_retries(record)
        except asyncio.CancelledError:
            return  # stopping: the message stays uncommitted and is delivered again
        except Exception:  # the dead letter itself could not be sent: leave it uncommitted
            _log.exception(
                "message.unhandled", topic=record.topic, partition=record.partition, offset=record.offset
            )
            return
        progress = self._progress.get(partition)
        if progress is not None:
            progress.in_flight.discard(record.offset)

    async def _handle_with_retries(self, record: Record) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(record)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                retryable = not isinstance(error, _NOT_RETRYABLE)
                if retryable and attempt < self._retry.max_attempts and not self._stopping:
                    HANDLER_RETRIES.labels(topic=record.topic).inc()
                    delay = self._retry.delay_s(attempt)
                    _log.warning(
                        "message.retry",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error_type=type(error).__name__,
                        error=redact_text(str(error))[:ERROR_TEXT_LIMIT],
                    )
                    await asyncio.sleep(delay)
                    continue
                if self._stopping and retryable:
                    raise asyncio.CancelledError from error
                await self._dead_letter(record, attempt, error)
                return
            else:
                return

    async def _dead_letter(self, record: Record, attempts: int, error: Exception) -> None:
        headers = [(name, value) for name, value in (record.headers or ()) if not name.startswith("x-dlq-")]
        why = dead_letter_headers(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error=error,
            consumer_group=self._group_id,
        )
        headers += [(name, value.encode()) for name, value in why.items()]
        body = record.value or b""
        for attempt in range(1, DEAD_LETTER_PUBLISH_ATTEMPTS + 1):
            try:
                await self._sender.send_raw(
                    topics.dead_letter_topic(record.topic), key=record.key, value=body, headers=headers
                )
                break
            except KafkaError:
                if attempt == DEAD_LETTER_PUBLISH_ATTEMPTS:
                    raise
                await asyncio.sleep(self._retry.delay_s(attempt))
        DEAD_LETTERED.labels(topic=record.topic).inc()
        _log.error(
            "message.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error_type=type(error).__name__,
            error=why[HEADER_ERROR],
        )
        if self._on_dead_letter is not None:
            await self._on_dead_letter(DeadLetter(record.topic, record.key, body, attempts, error))

    # --- committing ---------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await self._commit()

    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        offsets: dict[TopicPartition, int] = {}
        for partition, progress in list(self._progress.items()):
            if partitions is not None and partition not in partitions:
                continue
            position = progress.committable()
            if position > progress.committed:
                offsets[partition] = position
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as error:
            # A rebalance took the partitions away: their new owner redelivers from the last commit.
            _log.warning("consumer.commit_failed", topic=self._topic, error=str(error))
            return
        for partition, position in offsets.items():
            committed = self._progress.get(partition)
            if committed is not None:
                committed.committed = position

    # --- rebalancing --------------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the handlers of revoked partitions finish (briefly) and commit them before leaving."""
        leaving = {task for task, partition in self._task_partitions.items() if partition in revoked}
        if leaving:
            await asyncio.wait(leaving, timeout=REVOKE_WAIT_S)
        await self._commit(set(revoked))
        for partition in revoked:
            self._progress.pop(partition, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for partition in assigned:
            self._progress.setdefault(partition, _PartitionProgress())
