"""``python -m contracts.runtime.redrive`` on the real broker: what it replays, never twice, and for
which consumer group (the pipeline of every other group acknowledges the replay unhandled)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from contracts import topics
from contracts.runtime import dead_letter
from contracts.runtime.kafka import build_broker, stop_broker, subscribe
from contracts.runtime.redrive import Report, Selection, main, redrive
from contracts.runtime.settings import CommonSettings
from faststream.kafka.message import KafkaMessage

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


def owned_letter(
    topic: str, owner: str | None, *, replayed_for: str | None = None
) -> list[tuple[str, bytes]]:
    headers = letter_headers(topic, error_type="RuntimeError", age=timedelta(0))
    if owner is not None:
        headers.append((dead_letter.HEADER_CONSUMER_GROUP, owner.encode()))
    if replayed_for is not None:  # replayed before, and dead again
        headers.append((dead_letter.HEADER_REDRIVE_FOR_GROUP, replayed_for.encode()))
    return headers


async def test_each_letter_is_replayed_for_the_group_it_failed_in_and_one_group_s_alone_on_request(
    kafka_bootstrap: str,
) -> None:
    topic = f"redrive-{uuid.uuid4().hex[:8]}"
    dlq = topics.dead_letter_topic(topic)
    mine, theirs = f"mine-{uuid.uuid4().hex[:8]}", f"theirs-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for body, letter in (
            (b"mine", owned_letter(topic, mine, replayed_for=theirs)),
            (b"theirs", owned_letter(topic, theirs)),
            (b"unowned", owned_letter(topic, None)),
        ):
            await producer.send_and_wait(dlq, body, key=b"acct-1", partition=0, headers=letter)
    finally:
        await producer.stop()
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap)

    only_mine = Selection(for_group=mine)
    assert only_mine.progress_group() == f"dlq-redrive-{mine}"
    assert await redrive(settings, dlq, selection=only_mine) == Report(replayed=1, passed_over=2)
    assert await redrive(settings, dlq, selection=only_mine) == Report()
    [(_, body, headers)] = await read(kafka_bootstrap, topic, 1)
    assert (body, headers) == (
        b"mine",
        {"event-type": b"ImportCompleted", "x-redrive-for-group": mine.encode()},
    )

    # Another progress group goes over the whole topic: each letter for its owner, an unowned one for all.
    assert await redrive(settings, dlq, group=f"redrive-{uuid.uuid4().hex[:8]}") == Report(replayed=3)
    replayed = await read(kafka_bootstrap, topic, 4)
    assert [
        (body, headers.get(dead_letter.HEADER_REDRIVE_FOR_GROUP)) for _, body, headers in replayed[1:]
    ] == [
        (b"mine", mine.encode()),
        (b"theirs", theirs.encode()),
        (b"unowned", None),
    ]


async def test_a_replay_feeds_only_its_owner_and_the_other_groups_acknowledge_it(
    kafka_bootstrap: str,
) -> None:
    topic = f"redrive-{uuid.uuid4().hex[:8]}"
    owner, other = f"owner-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.dead_letter_topic(topic),
            b"replayed",
            key=b"acct-1",
            partition=0,
            headers=owned_letter(topic, owner),
        )
    finally:
        await producer.stop()
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap)
    assert await redrive(settings, topics.dead_letter_topic(topic), group=owner) == Report(replayed=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # keyed like the replayed message, so both are in one partition (the replay keeps the key)
        new = await producer.send_and_wait(topic, b"new", key=b"acct-1")
    finally:
        await producer.stop()

    handled: dict[str, list[bytes]] = {owner: [], other: []}
    brokers = [build_broker(settings, service=group) for group in handled]
    for broker, group in zip(brokers, handled, strict=True):

        async def handle(message: KafkaMessage, seen: list[bytes] = handled[group]) -> None:
            seen.append(message.body)

        subscribe(broker, topic, group_id=group, handler=handle)
    try:
        for broker in brokers:
            await broker.start()
        partition = TopicPartition(topic, new.partition)
        assert new.offset == 1  # after the replayed message
        async with asyncio.timeout(WAIT_S):
            for _ in iter(int, 1):  # until both groups committed both messages
                if [await committed(kafka_bootstrap, group, partition) for group in handled] == [2, 2]:
                    break
                await asyncio.sleep(0.2)
    finally:
        for broker in brokers:
            await stop_broker(broker)

    assert handled == {owner: [b"replayed", b"new"], other: [b"new"]}


async def committed(kafka_bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        position: int | None = await reader.committed(partition)
        return position
    finally:
        await reader.stop()
