"""Bounded retries with backoff, then the dead-letter topic: one middleware for every consumer.

faststream has no retry counter or dead-letter topic for Kafka, so this is ours. A handler that
raises is called again after an exponential, jittered delay, at most ``max_attempts`` times in all;
a failure that retrying cannot mend (:class:`PermanentFailure`, a message that does not parse) is
not retried. The message then goes to ``<topic>.dlq`` with headers saying why and how often it was
tried, an optional callback learns of it (so an import can fail cleanly instead of hanging), and
the offset is committed: a poison message holds its partition for a bounded time, never forever.
If the dead-letter publish itself fails the error propagates and the offset is not committed, so
the message is redelivered rather than lost.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from faststream import BaseMiddleware
from faststream.exceptions import HandlerException
from pydantic import ValidationError

from contracts import topics
from contracts.errors import PermanentFailure
from contracts.runtime.logging import get_logger, redact_text
from contracts.runtime.metrics import DEAD_LETTERED, HANDLER_RETRIES

if TYPE_CHECKING:
    from faststream._internal.basic_types import AsyncFuncAny
    from faststream._internal.context.repository import ContextRepo
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

HEADER_ORIGINAL_TOPIC: Final = "x-dlq-original-topic"
HEADER_PARTITION: Final = "x-dlq-original-partition"
HEADER_OFFSET: Final = "x-dlq-original-offset"
HEADER_ATTEMPTS: Final = "x-dlq-attempts"
HEADER_ERROR_TYPE: Final = "x-dlq-error-type"
HEADER_ERROR: Final = "x-dlq-error"
HEADER_FAILED_AT: Final = "x-dlq-failed-at"
HEADER_CONSUMER_GROUP: Final = "x-dlq-consumer-group"
ERROR_TEXT_LIMIT: Final = 1000

_log = get_logger(__name__)


def dead_letter_headers(
    *, topic: str, partition: int, offset: int, attempts: int, error: BaseException, consumer_group: str
) -> dict[str, str]:
    """Why, how often and from where a message was dead-lettered: the ``x-dlq-*`` headers."""
    return {
        HEADER_ORIGINAL_TOPIC: topic,
        HEADER_PARTITION: str(partition),
        HEADER_OFFSET: str(offset),
        HEADER_ATTEMPTS: str(attempts),
        HEADER_ERROR_TYPE: type(error).__name__,
        HEADER_ERROR: redact_text(str(error))[:ERROR_TEXT_LIMIT],
        HEADER_FAILED_AT: datetime.now(UTC).isoformat(),
        HEADER_CONSUMER_GROUP: consumer_group,
    }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay_s(self, failed_attempts: int) -> float:
        """Full-jitter exponential backoff before the next attempt."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (failed_attempts - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    key: bytes | None
    body: bytes
    attempts: int
    error: BaseException


OnDeadLetter = Callable[[DeadLetter], Awaitable[None]]

_NOT_RETRYABLE: Final = (PermanentFailure, ValidationError, json.JSONDecodeError, UnicodeDecodeError)


class DeadLetterMiddleware:
    """A broker middleware factory: ``KafkaBroker(middlewares=[DeadLetterMiddleware(...)])``."""

    def __init__(
        self,
        *,
        consumer_group: str,
        policy: RetryPolicy | None = None,
        on_dead_letter: OnDeadLetter | None = None,
    ) -> None:
        self.consumer_group = consumer_group
        self.policy = policy or RetryPolicy()
        self.on_dead_letter = on_dead_letter
        self.broker: KafkaBroker | None = None

    def bind(self, broker: KafkaBroker) -> None:
        self.broker = broker

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, owner=self)

    async def _consume(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call_next(msg)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._is_control_flow(error):
                    raise
                retryable = not isinstance(error, _NOT_RETRYABLE)
                if retryable and attempt < self.policy.max_attempts:
                    HANDLER_RETRIES.labels(topic=_topic_of(msg)).inc()
                    delay = self.policy.delay_s(attempt)
                    _log.warning(
                        "message.retry",
                        topic=_topic_of(msg),
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error_type=type(error).__name__,
                        error=redact_text(str(error))[:ERROR_TEXT_LIMIT],
                    )
                    await asyncio.sleep(delay)
                    continue
                await self._dead_letter(msg, attempt, error)
                return None

    @staticmethod
    def _is_control_flow(error: Exception) -> bool:
        """faststream's ack/nack/reject signals pass through untouched."""
        return isinstance(error, HandlerException)

    async def _dead_letter(self, msg: StreamMessage[Any], attempts: int, error: Exception) -> None:
        if self.broker is None:
            raise RuntimeError("DeadLetterMiddleware.bind(broker) was not called") from error
        raw = msg.raw_message
        record = raw[0] if isinstance(raw, tuple) else raw
        topic: str = record.topic
        headers = {key: value for key, value in msg.headers.items() if isinstance(value, str)}
        headers.update(
            dead_letter_headers(
                topic=topic,
                partition=record.partition,
                offset=record.offset,
                attempts=attempts,
                error=error,
                consumer_group=self.consumer_group,
            )
        )
        body: bytes = msg.body
        await self.broker.publish(
            body,
            topic=topics.dead_letter_topic(topic),
            key=record.key,
            headers=headers,
        )
        DEAD_LETTERED.labels(topic=topic).inc()
        _log.error(
            "message.dead_lettered",
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error_type=type(error).__name__,
            error=headers[HEADER_ERROR],
        )
        if self.on_dead_letter is not None:
            await self.on_dead_letter(DeadLetter(topic, record.key, body, attempts, error))


def _topic_of(msg: StreamMessage[Any]) -> str:
    raw = msg.raw_message
    record = raw[0] if isinstance(raw, tuple) else raw
    return str(getattr(record, "topic", "unknown"))


class _DeadLetterScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, owner: DeadLetterMiddleware) -> None:
        super().__init__(msg, context=context)
        self.owner = owner

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        return await self.owner._consume(call_next, msg)
