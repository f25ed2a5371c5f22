"""The one way every service consumes Kafka: concurrent, committed in order, retried, then dead-lettered.

faststream's subscriber fetches; the pipeline, the broker's outermost middleware, hands each message to
a task of its own and returns, so the fetch loop moves on while messages are handled:

- **concurrency:** up to ``concurrency`` messages of a subscription at once, across partitions and
  inside them; an ``ordered`` subscription still handles the messages of one key one after another;
- **commits:** a partition is committed up to its oldest unfinished message only, so a crash redelivers
  every message not finished and none that was (at-least-once; handlers are idempotent);
- **outages** (:func:`is_outage`: a store, broker or mail server that cannot be reached) pause the
  message, which is tried again with growing waits for as long as the outage lasts, never dead-lettered;
- **other failures** are tried again after a backoff, ``max_attempts`` times in all, then the message
  goes to ``<topic>.dlq`` (at once when no retry can help: :class:`PermanentFailure`, a message that
  does not parse) with the ``x-dlq-*`` headers, an ``on_dead_letter`` callback learns of it, and it is
  committed. A retry waits in its own task: the rest of the partition keeps flowing meanwhile.
- A dead letter that cannot be published (the broker is down) is tried again until it is: the message
  is never lost, and its partition's commits resume as soon as it is out.
- **replays:** a message the redrive replayed for another consumer group (``x-redrive-for-group``) is
  acknowledged without being handled: the dead-letter topic is shared by the topic's groups, and a
  replay is meant for the one whose handling failed.

faststream's telemetry and Prometheus middlewares wrap each message's whole handling, retries included,
in its task (through faststream's public middleware protocol); for publishing they stay broker
middlewares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faststream import BaseMiddleware
from faststream.message import SourceType
from pydantic import ValidationError

from contracts import topics
from contracts.errors import DependencyUnavailable, PermanentFailure
from contracts.runtime.backoff import backoff_s
from contracts.runtime.dead_letter import (
    HEADER_ERROR,
    HEADER_PREFIX,
    HEADER_REDRIVE_FOR_GROUP,
    DeadLetter,
    OnDeadLetter,
    dead_letter_headers,
    error_text,
)
from contracts.runtime.logging import get_logger
from contracts.runtime.metrics import DEAD_LETTERED, HANDLER_RETRIES, OUTAGE_WAITS
from contracts.runtime.settings import CommonSettings

if TYPE_CHECKING:
    from faststream import ContextRepo
    from faststream.kafka.message import KafkaMessage
    from faststream.types import AsyncFuncAny

COMMIT_INTERVAL_S: Final = 0.5
REVOKE_WAIT_S: Final = 20.0
STOP_WAIT_S: Final = 10.0

_NOT_RETRYABLE: Final = (PermanentFailure, ValidationError, json.JSONDecodeError, UnicodeDecodeError)

_log = get_logger(__name__)


def _outage_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [DependencyUnavailable, ConnectionError, KafkaTimeoutError]
    with contextlib.suppress(ImportError):  # the services that talk to MongoDB have pymongo
        from pymongo.errors import ConnectionFailure

        found.append(ConnectionFailure)
    return tuple(found)


_OUTAGES: Final = _outage_types()


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says a dependency cannot be reached for now:
    :class:`DependencyUnavailable`, a refused or broken connection, MongoDB's connection failures
    (server selection timed out, not primary), a Kafka error the broker calls retriable."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, _OUTAGES) or (isinstance(seen, KafkaError) and seen.retriable):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing message is tried before ``<topic>.dlq``, and how long each wait is."""

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    #: While a dependency is down: the longest wait between tries (the message waits, however long).
    outage_max_delay_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.consumer_max_attempts,
            base_delay_s=settings.consumer_retry_base_delay_s,
            max_delay_s=settings.consumer_retry_max_delay_s,
            outage_max_delay_s=settings.consumer_outage_max_delay_s,
        )

    def retry_delay_s(self, failures: int) -> float:
        return backoff_s(failures, base_s=self.base_delay_s, cap_s=self.max_delay_s)

    def outage_delay_s(self, waits: int) -> float:
        return backoff_s(waits, base_s=self.base_delay_s, cap_s=self.outage_max_delay_s)


MessageHandler = Callable[["KafkaMessage"], Awaitable[None]]


class MiddlewareFactory(Protocol):
    """A faststream broker middleware: called per message, it gives the middleware of that message."""

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> BaseMiddleware[Any, Any]: ...


class DeadLetterPublisher(Protocol):
    async def __call__(
        self, topic: str, *, body: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None: ...


@dataclass(slots=True)
class _Progress:
    """One partition's offsets: handed out up to ``next_offset``, those in ``in_flight`` unfinished."""

    next_offset: int = -1
    in_flight: set[int] = field(default_factory=set)
    committed: int = -1

    def committable(self) -> int:
        return min(self.in_flight) if self.in_flight else self.next_offset


class Subscription(ConsumerRebalanceListener):  # type: ignore[misc]
    """One subscribed topic: its tasks in flight, its partitions' progress, its commits."""

    def __init__(
        self,
        pipeline: Pipeline,
        topic: str,
        *,
        group_id: str,
        concurrency: int,
        ordered: bool,
        policy: RetryPolicy,
        on_dead_letter: OnDeadLetter | None,
    ) -> None:
        self.pipeline = pipeline
        self.topic = topic
        self.group_id = group_id
        self.ordered = ordered
        self.policy = policy
        self.on_dead_letter = on_dead_letter
        self._slots = asyncio.Semaphore(concurrency)
        self._progress: dict[TopicPartition, _Progress] = {}
        self._tasks: dict[asyncio.Task[None], TopicPartition] = {}
        self._last_of_key: dict[bytes | None, asyncio.Task[None]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._committer: asyncio.Task[None] | None = None
        self._stopping = False
        self._assigned: frozenset[int] = frozenset()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def assigned_partitions(self) -> frozenset[int]:
        """The partitions of the topic this process consumes now: empty before the first
        assignment, during a rebalance, once stopping, and on faststream's in-memory test broker."""
        return self._assigned

    async def dispatch(self, call_next: AsyncFuncAny, msg: KafkaMessage, context: ContextRepo) -> None:
        consumer = msg.consumer
        if not isinstance(consumer, AIOKafkaConsumer):  # faststream's in-memory test broker: inline
            await self.pipeline.handle(self, call_next, msg, context)
            return
        await self._slots.acquire()
        if self._stopping:  # not handed out: uncommitted, so delivered again after the restart
            self._slots.release()
            return
        self._consumer = consumer
        record = msg.raw_message
        assert not isinstance(record, tuple)
        partition = TopicPartition(record.topic, record.partition)
        progress = self._progress.setdefault(partition, _Progress())
        progress.in_flight.add(record.offset)
        progress.next_offset = max(progress.next_offset, record.offset + 1)
        previous = self._last_of_key.get(record.key) if self.ordered else None
        finished = partial(progress.in_flight.discard, record.offset)
        task = asyncio.create_task(self._run(call_next, msg, context, finished, previous))
        self._tasks[task] = partition
        if self.ordered:
            self._last_of_key[record.key] = task
        task.add_done_callback(partial(self._task_done, record.key))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_forever(), name=f"commit-{self.topic}")

    async def _run(
        self,
        call_next: AsyncFuncAny,
        msg: KafkaMessage,
        context: ContextRepo,
        finished: Callable[[], None],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:  # the key's earlier message first
            await asyncio.wait([previous])
        await self.pipeline.handle(self, call_next, msg, context)
        finished()

    def _task_done(self, key: bytes | None, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if self._last_of_key.get(key) is task:
            del self._last_of_key[key]
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:  # a bug: left uncommitted, logged
            _log.error("message.unhandled", topic=self.topic, error=error_text(task.exception()))  # type: ignore[arg-type]

    async def _commit_forever(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await self.commit()

    async def commit(self, partitions: set[TopicPartition] | None = None) -> None:
        """Commit each partition up to its oldest unfinished message."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets = {
            partition: position
            for partition, progress in list(self._progress.items())
            if (partitions is None or partition in partitions)
            and (position := progress.committable()) > progress.committed
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as error:  # revoked meanwhile: the new owner redelivers from the last commit
            _log.warning("consumer.commit_failed", topic=self.topic, error=str(error))
            return
        for partition, position in offsets.items():
            if (progress := self._progress.get(partition)) is not None:
                progress.committed = max(progress.committed, position)

    async def stop(self) -> None:
        """Take no more messages, give those in flight a moment, commit what finished."""
        self._stopping = True
        self._assigned = frozenset()
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_S)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        await self.commit()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the messages of revoked partitions finish (briefly), commit them, forget the partitions."""
        self._assigned -= {partition.partition for partition in revoked if partition.topic == self.topic}
        leaving = {task for task, partition in self._tasks.items() if partition in revoked}
        if leaving:
            _, unfinished = await asyncio.wait(leaving, timeout=REVOKE_WAIT_S)
            for task in unfinished:
                task.cancel()
        await self.commit(set(revoked))
        for partition in revoked:
            self._progress.pop(partition, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Remember the assignment (the whole of it: the default, eager, protocol revokes every
        partition before a rebalance and assigns the new set after); a partition's progress starts
        with its first message."""
        self._assigned = frozenset(
            partition.partition for partition in assigned if partition.topic == self.topic
        )


class Pipeline:
    """The broker middleware factory behind every subscription: ``build_broker`` installs it."""

    def __init__(self, consuming: Sequence[MiddlewareFactory] = ()) -> None:
        #: faststream middlewares run around each message's handling, outermost first.
        self.consuming = tuple(consuming)
        self.subscriptions: dict[str, Subscription] = {}
        self.publish_dead_letter: DeadLetterPublisher | None = None

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _PipelineScope:
        return _PipelineScope(msg, context=context, pipeline=self)

    async def stop(self) -> None:
        await asyncio.gather(*(subscription.stop() for subscription in self.subscriptions.values()))

    async def handle(
        self, subscription: Subscription, call_next: AsyncFuncAny, msg: KafkaMessage, context: ContextRepo
    ) -> None:
        """One message, inside the consuming middlewares: tried until done or dead-lettered; one
        replayed for another group only acknowledged."""
        replayed_for = msg.headers.get(HEADER_REDRIVE_FOR_GROUP)
        if replayed_for is not None and replayed_for != subscription.group_id:
            _log.debug(
                "message.replay_for_another_group",
                topic=subscription.topic,
                group=subscription.group_id,
                replayed_for=replayed_for,
            )
            return
        call: AsyncFuncAny = partial(self._attempts, subscription, call_next)
        async with AsyncExitStack() as stack:
            for factory in reversed(self.consuming):
                scope = await stack.enter_async_context(factory(msg.raw_message, context=context))
                call = partial(scope.consume_scope, call)
            await call(msg)

    async def _attempts(self, subscription: Subscription, call_next: AsyncFuncAny, msg: KafkaMessage) -> None:
        policy = subscription.policy
        topic = subscription.topic
        failures = outage_waits = 0
        while True:
            try:
                await call_next(msg)
            except Exception as error:
                if is_outage(error):
                    outage_waits += 1
                    OUTAGE_WAITS.labels(topic=topic).inc()
                    delay = policy.outage_delay_s(outage_waits)
                    _log.warning("message.outage_wait", **_why(topic, error, outage_waits, delay))
                    await asyncio.sleep(delay)
                    continue
                failures += 1
                if not isinstance(error, _NOT_RETRYABLE) and failures < policy.max_attempts:
                    HANDLER_RETRIES.labels(topic=topic).inc()
                    delay = policy.retry_delay_s(failures)
                    _log.warning("message.retry", **_why(topic, error, failures, delay))
                    await asyncio.sleep(delay)
                    continue
                await self._dead_letter(subscription, msg, failures, error)
            return

    async def _dead_letter(
        self, subscription: Subscription, msg: KafkaMessage, attempts: int, error: Exception
    ) -> None:
        record = msg.raw_message
        assert not isinstance(record, tuple)
        headers = {
            name: value
            for name, value in msg.headers.items()
            if not name.startswith(HEADER_PREFIX) and name != HEADER_REDRIVE_FOR_GROUP
        }
        headers |= dead_letter_headers(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error=error,
            consumer_group=subscription.group_id,
        )
        publish = self.publish_dead_letter
        if publish is None:
            raise RuntimeError(
                "the pipeline has no dead-letter publisher: build the broker with build_broker"
            )
        dead_letter_topic = topics.dead_letter_topic(record.topic)
        await self._until_done(
            "dead_letter.publish_failed",
            subscription,
            lambda: publish(dead_letter_topic, body=msg.body, key=record.key, headers=headers),
        )
        DEAD_LETTERED.labels(topic=record.topic).inc()
        _log.error(
            "message.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error_type=type(error).__name__,
            error=headers[HEADER_ERROR],
        )
        on_dead_letter = subscription.on_dead_letter
        if on_dead_letter is not None:
            letter = DeadLetter(record.topic, record.key, msg.body, attempts, error)
            await self._until_done(
                "dead_letter.callback_failed", subscription, lambda: on_dead_letter(letter)
            )

    async def _until_done(
        self, event: str, subscription: Subscription, step: Callable[[], Awaitable[None]]
    ) -> None:
        """``step`` again and again (with the outage backoff) until it succeeds: a dead letter must
        neither be lost nor leave its offset in flight for good."""
        waits = 0
        while True:
            try:
                await step()
            except Exception as error:
                waits += 1
                delay = subscription.policy.outage_delay_s(waits)
                _log.error(event, **_why(subscription.topic, error, waits, delay))
                await asyncio.sleep(delay)
            else:
                return


def _why(topic: str, error: BaseException, attempt: int, delay_s: float) -> dict[str, Any]:
    return {
        "topic": topic,
        "attempt": attempt,
        "delay_s": round(delay_s, 3),
        "error_type": type(error).__name__,
        "error": error_text(error),
    }


class _PipelineScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, pipeline: Pipeline) -> None:
        super().__init__(msg, context=context)
        self.pipeline = pipeline

    async def consume_scope(self, call_next: AsyncFuncAny, msg: KafkaMessage) -> Any:  # type: ignore[override]
        subscription = None
        if msg.source_type is not SourceType.RESPONSE and not isinstance(msg.raw_message, tuple):
            subscription = self.pipeline.subscriptions.get(msg.raw_message.topic)
        if subscription is None:
            return await call_next(msg)
        await subscription.dispatch(call_next, msg, self.context)
        return None


class PublishingOnly:
    """A faststream middleware used for publishing alone (the pipeline runs it around consuming)."""

    def __init__(self, middleware: MiddlewareFactory) -> None:
        self.middleware = middleware

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _PublishScope:
        return _PublishScope(msg, context=context, inner=self.middleware(msg, context=context))


class _PublishScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, inner: BaseMiddleware) -> None:
        super().__init__(msg, context=context)
        self.inner = inner

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        return await self.inner.publish_scope(call_next, cmd)
