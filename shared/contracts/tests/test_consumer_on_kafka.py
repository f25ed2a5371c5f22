"""The consumption pipeline on the real broker: commits, concurrency, and a dead letter the broker refuses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from contracts import topics
from contracts.errors import PermanentFailure
from contracts.runtime import dead_letter
from contracts.runtime.kafka import build_broker, stop_broker, subscribe
from contracts.runtime.settings import CommonSettings
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

WAIT_S = 60.0


def settings(kafka_bootstrap: str) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_max_attempts=2,
        consumer_retry_base_delay_s=0.01,
        consumer_retry_max_delay_s=0.02,
        consumer_outage_max_delay_s=0.05,
    )


async def produce(kafka_bootstrap: str, topic: str, bodies: list[bytes], *, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for body in bodies:
            await producer.send_and_wait(topic, body, key=key, partition=0)
    finally:
        await producer.stop()


async def committed(kafka_bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        position: int | None = await reader.committed(partition)
        return position
    finally:
        await reader.stop()


async def read_all(kafka_bootstrap: str, topic: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await reader.start()
    found: list[tuple[bytes, dict[str, str]]] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(found) < count:
                batches = await reader.getmany(timeout_ms=500)
                for records in batches.values():
                    found += [
                        (r.value or b"", {name: value.decode() for name, value in r.headers}) for r in records
                    ]
    finally:
        await reader.stop()
    return found


@pytest.fixture
async def broker(kafka_bootstrap: str) -> AsyncIterator[KafkaBroker]:
    built = build_broker(settings(kafka_bootstrap), service="pipeline-test")
    yield built
    await stop_broker(built)


async def test_a_dead_letter_the_broker_refuses_for_a_while_does_not_freeze_the_partition(
    kafka_bootstrap: str, broker: KafkaBroker
) -> None:
    topic, group = f"pipeline-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    handled: list[bytes] = []

    async def handler(message: KafkaMessage) -> None:
        if message.body == b"poison":
            raise PermanentFailure("never readable")
        handled.append(message.body)

    subscription = subscribe(broker, topic, group_id=group, handler=handler, concurrency=8, ordered=False)
    publish = subscription.pipeline.publish_dead_letter
    assert publish is not None
    refusals = 8  # more than any fixed number of publish attempts a consumer might give up after

    async def refused_for_a_while(
        topic: str, *, body: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        nonlocal refusals
        if refusals > 0:
            refusals -= 1
            raise KafkaConnectionError("the broker is restarting")
        await publish(topic, body=body, key=key, headers=headers)

    subscription.pipeline.publish_dead_letter = refused_for_a_while
    bodies = [b"poison", b"one", b"two", b"three"]
    await produce(kafka_bootstrap, topic, bodies, key=b"acct-1")
    await broker.start()

    [(body, headers)] = await read_all(kafka_bootstrap, topics.dead_letter_topic(topic), 1)
    assert body == b"poison"
    assert headers[dead_letter.HEADER_ORIGINAL_TOPIC] == topic
    assert headers[dead_letter.HEADER_ERROR_TYPE] == "PermanentFailure"
    assert sorted(handled) == sorted(bodies[1:])
    partition = TopicPartition(topic, 0)
    async with asyncio.timeout(WAIT_S):
        for _ in iter(int, 1):  # until the whole partition is committed
            if await committed(kafka_bootstrap, group, partition) == len(bodies):
                break
            await asyncio.sleep(0.2)
    assert refusals == 0
