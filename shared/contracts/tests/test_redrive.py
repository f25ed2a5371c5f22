"""``python -m contracts.runtime.redrive`` on the real broker: what it replays, and never twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from contracts import topics
from contracts.runtime import dead_letter
from contracts.runtime.redrive import Report, Selection, main, redrive
from contracts.runtime.settings import CommonSettings

WAIT_S = 60.0


def letter_headers(topic: str, *, error_type: str, age: timedelta) -> list[tuple[str, bytes]]:
    return [
        ("event-type", b"ImportCompleted"),
        (dead_letter.HEADER_ORIGINAL_TOPIC, topic.encode()),
        (dead_letter.HEADER_ERROR_TYPE, error_type.encode()),
        (dead_letter.HEADER_FAILED_AT, (datetime.now(UTC) - age).isoformat().encode()),
    ]


Replayed = list[tuple[bytes | None, bytes, dict[str, bytes]]]


async def read(kafka_bootstrap: str, topic: str, count: int) -> Replayed:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await reader.start()
    found: Replayed = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(found) < count:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    found += [(r.key, r.value or b"", dict(r.headers)) for r in records]
        # nothing more than expected arrives
        for records in (await reader.getmany(timeout_ms=2000)).values():
            found += [(r.key, r.value or b"", dict(r.headers)) for r in records]
    finally:
        await reader.stop()
    return found


async def test_redrive_replays_the_selected_letters_to_their_topic_once(kafka_bootstrap: str) -> None:
    topic = f"redrive-{uuid.uuid4().hex[:8]}"
    dlq = topics.dead_letter_topic(topic)
    hour = timedelta(hours=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for body, error_type, age in (
            (b"old-a", "SourceError", 2 * hour),
            (b"old-b", "RuntimeError", 2 * hour),
            (b"new-a", "SourceError", timedelta(0)),
        ):
            await producer.send_and_wait(
                dlq,
                body,
                key=b"acct-1",
                partition=0,
                headers=letter_headers(topic, error_type=error_type, age=age),
            )
    finally:
        await producer.stop()
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap)
    group = f"redrive-{uuid.uuid4().hex[:8]}"
    old_source_errors = Selection(older_than=hour, headers={dead_letter.HEADER_ERROR_TYPE: "SourceError"})

    assert await redrive(settings, dlq, selection=old_source_errors, group=group, dry_run=True) == Report(
        1, 1, 1
    )
    assert await redrive(settings, dlq, selection=old_source_errors, group=group) == Report(1, 1, 1)
    assert await redrive(settings, dlq, selection=old_source_errors, group=group) == Report(0, 0, 1)
    assert await redrive(settings, dlq, group=group) == Report(replayed=1)

    replayed = await read(kafka_bootstrap, topic, 2)
    assert [(key, body) for key, body, _ in replayed] == [(b"acct-1", b"old-a"), (b"acct-1", b"new-a")]
    assert all(headers == {"event-type": b"ImportCompleted"} for _, _, headers in replayed)


def test_redrive_refuses_a_topic_that_is_not_a_dead_letter_topic() -> None:
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        main(["imports.v1"])
