"""What a dead letter is: the message, and the ``x-dlq-*`` headers that say where it came from and why.

The consumption pipeline (:mod:`contracts.runtime.consumer`) writes them, ``dlq-redrive``
(:mod:`contracts.runtime.redrive`) reads them back; this module is the one place that names them.

A topic has one dead-letter topic for all the groups that consume it; ``x-dlq-consumer-group`` names
the group whose handling failed. The redrive replays a letter with ``x-redrive-for-group`` naming that
group, and the pipeline of every other group acknowledges the replayed message without handling it:
a replay feeds only its owner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from contracts.runtime.logging import redact_text

HEADER_PREFIX: Final = "x-dlq-"
HEADER_ORIGINAL_TOPIC: Final = "x-dlq-original-topic"
HEADER_PARTITION: Final = "x-dlq-original-partition"
HEADER_OFFSET: Final = "x-dlq-original-offset"
HEADER_ATTEMPTS: Final = "x-dlq-attempts"
HEADER_ERROR_TYPE: Final = "x-dlq-error-type"
HEADER_ERROR: Final = "x-dlq-error"
HEADER_FAILED_AT: Final = "x-dlq-failed-at"
HEADER_CONSUMER_GROUP: Final = "x-dlq-consumer-group"
#: On a replayed message: the one consumer group that is to handle it (the others only acknowledge it).
HEADER_REDRIVE_FOR_GROUP: Final = "x-redrive-for-group"
ERROR_TEXT_LIMIT: Final = 1000


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
        HEADER_ERROR: error_text(error),
        HEADER_FAILED_AT: datetime.now(UTC).isoformat(),
        HEADER_CONSUMER_GROUP: consumer_group,
    }


def error_text(error: BaseException) -> str:
    """An error's message as it may be logged or stored: secrets redacted, length bounded."""
    return redact_text(str(error))[:ERROR_TEXT_LIMIT]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    key: bytes | None
    body: bytes
    attempts: int
    error: BaseException


OnDeadLetter = Callable[[DeadLetter], Awaitable[None]]
