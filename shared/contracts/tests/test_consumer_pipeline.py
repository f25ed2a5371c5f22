"""The consumption pipeline's retries, outage waits and dead letters, on faststream's in-memory broker."""

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from contracts import topics
from contracts.errors import DependencyUnavailable, PermanentFailure
from contracts.events import CONNECTION_EVENTS, Event, ProcessorDisconnected
from contracts.runtime import dead_letter
from contracts.runtime.backoff import backoff_s, retry_after_s
from contracts.runtime.consumer import is_outage
from contracts.runtime.dead_letter import DeadLetter
from contracts.runtime.kafka import build_broker, publish_event, subscribe_events
from contracts.runtime.settings import CommonSettings
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import ServerSelectionTimeoutError

MAX_ATTEMPTS = 3
FAST = CommonSettings(
    consumer_max_attempts=MAX_ATTEMPTS,
    consumer_retry_base_delay_s=0.001,
    consumer_retry_max_delay_s=0.002,
    consumer_outage_max_delay_s=0.002,
)


def make_broker() -> KafkaBroker:
    return build_broker(FAST, service="test")


def disconnected(account: str = "acct-1") -> ProcessorDisconnected:
    return ProcessorDisconnected(account_id=account, connection_id="conn-1")


async def test_a_handler_that_recovers_is_retried_and_nothing_is_dead_lettered() -> None:
    broker = make_broker()
    calls: list[Event] = []
    dead: list[bytes] = []

    async def flaky(event: Event) -> None:
        calls.append(event)
        if len(calls) < 3:
            raise RuntimeError("a hiccup")

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=flaky)

    @broker.subscriber(topics.dead_letter_topic(topics.CONNECTIONS), group_id="dlq-reader")
    async def read_dlq(message: KafkaMessage) -> None:
        dead.append(message.body)

    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, topics.CONNECTIONS, disconnected())

    assert len(calls) == 3
    assert dead == []


async def test_a_message_that_keeps_failing_goes_to_the_dlq_with_why_and_how_often() -> None:
    lost: list[DeadLetter] = []

    async def remember(letter: DeadLetter) -> None:
        lost.append(letter)

    broker = make_broker()
    attempts = 0
    dead: list[tuple[bytes, dict[str, Any], bytes | None]] = []

    async def broken(event: Event) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("boom with sk_test_" + "abcdefghijkl1234")

    subscribe_events(
        broker,
        topics.CONNECTIONS,
        group_id="g",
        events=CONNECTION_EVENTS,
        handler=broken,
        on_dead_letter=remember,
    )

    @broker.subscriber(topics.dead_letter_topic(topics.CONNECTIONS), group_id="dlq-reader")
    async def read_dlq(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers, message.raw_message.key))  # type: ignore[union-attr]

    event = disconnected()
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, topics.CONNECTIONS, event)

    assert attempts == MAX_ATTEMPTS
    [(body, headers, key)] = dead
    assert CONNECTION_EVENTS.parse(body) == event
    assert key == b"acct-1"
    assert headers[dead_letter.HEADER_ORIGINAL_TOPIC] == topics.CONNECTIONS
    assert headers[dead_letter.HEADER_ATTEMPTS] == str(MAX_ATTEMPTS)
    assert headers[dead_letter.HEADER_ERROR_TYPE] == "RuntimeError"
    assert "sk_test_" not in headers[dead_letter.HEADER_ERROR]
    assert [letter.attempts for letter in lost] == [MAX_ATTEMPTS]


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b'{"type": "ProcessorDisconnected", "account_id": "a"}'],
    ids=["unparseable", "invalid-event"],
)
async def test_a_malformed_message_is_dead_lettered_at_once(body: bytes) -> None:
    broker = make_broker()
    handled: list[Event] = []
    dead: list[dict[str, Any]] = []

    async def handler(event: Event) -> None:
        handled.append(event)

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=handler)

    @broker.subscriber(topics.dead_letter_topic(topics.CONNECTIONS), group_id="dlq-reader")
    async def read_dlq(message: KafkaMessage) -> None:
        dead.append(message.headers)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(body, topic=topics.CONNECTIONS, key=b"a")

    assert handled == []
    [headers] = dead
    assert headers[dead_letter.HEADER_ATTEMPTS] == "1"


async def test_a_message_replayed_for_another_group_is_acknowledged_unhandled_and_its_own_is_handled() -> (
    None
):
    broker = make_broker()
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.account_id)

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=handler)

    async def publish(account: str, replayed_for: str | None = None) -> None:
        event = disconnected(account)
        headers: dict[str, str] = {"event-type": event.type}
        if replayed_for is not None:
            headers[dead_letter.HEADER_REDRIVE_FOR_GROUP] = replayed_for
        await test_broker.publish(
            event.model_dump_json().encode(), topic=topics.CONNECTIONS, key=event.key(), headers=headers
        )

    async with TestKafkaBroker(broker) as test_broker:
        await publish("for-another", replayed_for="other")
        await publish("for-us", replayed_for="g")
        await publish("not-replayed")

    assert handled == ["for-us", "not-replayed"]


async def test_a_replayed_message_that_fails_again_is_dead_lettered_for_its_group_afresh() -> None:
    broker = make_broker()
    dead: list[dict[str, Any]] = []

    async def broken(event: Event) -> None:
        raise PermanentFailure("still broken")

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=broken)

    @broker.subscriber(topics.dead_letter_topic(topics.CONNECTIONS), group_id="dlq-reader")
    async def read_dlq(message: KafkaMessage) -> None:
        dead.append(message.headers)

    event = disconnected()
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            event.model_dump_json().encode(),
            topic=topics.CONNECTIONS,
            key=event.key(),
            headers={"event-type": event.type, dead_letter.HEADER_REDRIVE_FOR_GROUP: "g"},
        )

    [headers] = dead
    assert headers[dead_letter.HEADER_CONSUMER_GROUP] == "g"
    assert dead_letter.HEADER_REDRIVE_FOR_GROUP not in headers


async def test_a_permanent_failure_is_not_retried() -> None:
    broker = make_broker()
    attempts = 0

    async def handler(event: Event) -> None:
        nonlocal attempts
        attempts += 1
        raise PermanentFailure("this connection no longer exists")

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=handler)
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, topics.CONNECTIONS, disconnected())

    assert attempts == 1


@pytest.mark.parametrize(
    "outage",
    [
        ConnectionRefusedError("connection refused"),
        DependencyUnavailable("the mail server refuses for now"),
        ServerSelectionTimeoutError("no MongoDB server"),
        KafkaConnectionError("broker down"),
    ],
    ids=["socket", "typed", "mongo", "kafka"],
)
async def test_an_outage_longer_than_the_retries_waits_it_out_and_is_never_dead_lettered(
    outage: Exception,
) -> None:
    broker = make_broker()
    calls = 0
    dead: list[bytes] = []

    async def down_for_a_while(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 4 * MAX_ATTEMPTS:
            raise RuntimeError("the handler failed") from outage

    subscribe_events(
        broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=down_for_a_while
    )

    @broker.subscriber(topics.dead_letter_topic(topics.CONNECTIONS), group_id="dlq-reader")
    async def read_dlq(message: KafkaMessage) -> None:
        dead.append(message.body)

    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, topics.CONNECTIONS, disconnected())

    assert calls == 4 * MAX_ATTEMPTS + 1
    assert dead == []


async def test_a_subscription_knows_the_partitions_of_its_topic_assigned_to_it_now() -> None:
    broker = make_broker()

    async def handle(event: Event) -> None:
        return None

    subscription = subscribe_events(
        broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=handle
    )
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, topics.CONNECTIONS, disconnected())
        assert subscription.assigned_partitions == frozenset()  # the in-memory broker assigns nothing

    def of(topic: str, *partitions: int) -> set[TopicPartition]:
        return {TopicPartition(topic, partition) for partition in partitions}

    # A rebalance revokes the whole assignment, then assigns the whole new one (the eager protocol).
    await subscription.on_partitions_assigned(of(topics.CONNECTIONS, 0, 3, 7) | of("another.topic", 1))
    assert subscription.assigned_partitions == {0, 3, 7}
    await subscription.on_partitions_revoked(of(topics.CONNECTIONS, 0, 3, 7))
    assert subscription.assigned_partitions == frozenset()  # nothing owned while the group rebalances
    await subscription.on_partitions_assigned(of(topics.CONNECTIONS, 3, 5))
    assert subscription.assigned_partitions == {3, 5}
    await subscription.on_partitions_revoked(of(topics.CONNECTIONS, 5))
    assert subscription.assigned_partitions == {3}
    await subscription.stop()
    assert subscription.assigned_partitions == frozenset()  # leaving: it takes no more messages


def test_what_counts_as_an_outage() -> None:
    assert is_outage(ConnectionResetError())
    assert not is_outage(RuntimeError("a bug"))
    assert not is_outage(PermanentFailure("never"))
    assert not is_outage(TimeoutError())


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff_s(1, base_s=1.0, cap_s=4.0) <= 1.0
    assert 1.0 <= backoff_s(2, base_s=1.0, cap_s=4.0) <= 2.0
    assert all(2.0 <= backoff_s(n, base_s=1.0, cap_s=4.0) <= 4.0 for n in range(3, 10))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("31536000", 31536000.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Thu, 01 Jan 2026 00:01:00 GMT", 60.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, now=datetime(2026, 1, 1, tzinfo=UTC)) == seconds
