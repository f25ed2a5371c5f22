"""The shared retry/dead-letter middleware, on faststream's in-memory broker."""

from typing import Any

import pytest
from contracts import topics
from contracts.errors import PermanentFailure
from contracts.events import CONNECTION_EVENTS, Event, ProcessorDisconnected
from contracts.runtime import dead_letter
from contracts.runtime.dead_letter import DeadLetter, DeadLetterMiddleware, RetryPolicy
from contracts.runtime.kafka import publish_event, subscribe_events
from contracts.runtime.settings import CommonSettings
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.002)


def make_broker(on_dead_letter: Any = None) -> KafkaBroker:
    middleware = DeadLetterMiddleware(consumer_group="test", policy=FAST, on_dead_letter=on_dead_letter)
    from contracts.runtime.kafka import build_broker

    return build_broker(CommonSettings(), service="test", dead_letters=middleware)


def disconnected(account: str = "acct-1") -> ProcessorDisconnected:
    return ProcessorDisconnected(account_id=account, connection_id="conn-1")


async def test_a_handler_that_recovers_is_retried_and_nothing_is_dead_lettered() -> None:
    broker = make_broker()
    calls: list[Event] = []
    dead: list[bytes] = []

    async def flaky(event: Event) -> None:
        calls.append(event)
        if len(calls) < 3:
            raise ConnectionError("store briefly unreachable")

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

    broker = make_broker(remember)
    attempts = 0
    dead: list[tuple[bytes, dict[str, Any], bytes | None]] = []

    async def broken(event: Event) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("boom with sk_test_" + "abcdefghijkl1234")

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=broken)

    @broker.subscriber(topics.dead_letter_topic(topics.CONNECTIONS), group_id="dlq-reader")
    async def read_dlq(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers, message.raw_message.key))  # type: ignore[union-attr]

    event = disconnected()
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, topics.CONNECTIONS, event)

    assert attempts == FAST.max_attempts
    [(body, headers, key)] = dead
    assert CONNECTION_EVENTS.parse(body) == event
    assert key == b"acct-1"
    assert headers[dead_letter.HEADER_ORIGINAL_TOPIC] == topics.CONNECTIONS
    assert headers[dead_letter.HEADER_ATTEMPTS] == str(FAST.max_attempts)
    assert headers[dead_letter.HEADER_ERROR_TYPE] == "RuntimeError"
    assert "sk_test_" not in headers[dead_letter.HEADER_ERROR]
    assert [letter.attempts for letter in lost] == [FAST.max_attempts]


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


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=4.0)
    assert 0.5 <= policy.delay_s(1) <= 1.0
    assert 1.0 <= policy.delay_s(2) <= 2.0
    assert all(2.0 <= policy.delay_s(n) <= 4.0 for n in range(3, 10))
