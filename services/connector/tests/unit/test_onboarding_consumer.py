"""The Kafka entry point over faststream's in-memory broker: a request in, an answer out."""

from __future__ import annotations

import json

from connector.adapters.kafka_events import KafkaEventPublisher
from connector.adapters.sealed_box import seal
from connector.entrypoints.onboarding_consumer import subscribe_onboarding_requests
from connector.service.dependencies import Dependencies
from connector_fakes import STRIPE_KEY, World, public_key_b64
from contracts.events import (
    CONNECTION_EVENTS,
    ConnectionRejected,
    ProcessorSkipped,
    StripeAuthorizationRequired,
)
from contracts.runtime.kafka import build_broker
from contracts.runtime.settings import CommonSettings
from contracts.topics import CONNECTIONS, ONBOARDING_REQUESTS
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage


def broker_for(world: World) -> tuple[KafkaBroker, list[bytes]]:
    broker = build_broker(CommonSettings(), service="connector")
    deps = Dependencies(**{**world.deps.__dict__, "events": KafkaEventPublisher(broker)})
    subscribe_onboarding_requests(broker, deps)
    answers: list[bytes] = []

    @broker.subscriber(CONNECTIONS, group_id="test-observer")
    async def observe(message: KafkaMessage) -> None:
        answers.append(message.body)

    return broker, answers


async def test_requests_in_answers_out(world: World) -> None:
    broker, answers = broker_for(world)
    requests = [
        {
            "type": "SkipRequested",
            "account_id": "acc_1",
            "event_id": "6f1f5b8e-4a5c-4d1e-9a51-000000000001",
            "occurred_at": "2025-01-01T00:00:00Z",
        },
        {
            "type": "StripeKeySubmitted",
            "account_id": "acc_2",
            "api_key_sealed": seal(public_key_b64(world), STRIPE_KEY),
            "contact_email": "o@a.example",
            "event_id": "6f1f5b8e-4a5c-4d1e-9a51-000000000002",
            "occurred_at": "2025-01-01T00:00:00Z",
        },
        {
            "type": "StripeKeySubmitted",
            "account_id": "acc_3",
            "api_key": STRIPE_KEY,
            "contact_email": "o@a.example",
            "event_id": "6f1f5b8e-4a5c-4d1e-9a51-000000000003",
            "occurred_at": "2025-01-01T00:00:00Z",
        },
    ]

    async with TestKafkaBroker(broker):
        for request in requests:
            await broker.publish(
                json.dumps(request).encode(), topic=ONBOARDING_REQUESTS, key=request["account_id"].encode()
            )

    parsed = [CONNECTION_EVENTS.parse(answer) for answer in answers]
    assert [type(event) for event in parsed] == [
        ProcessorSkipped,
        StripeAuthorizationRequired,
        ConnectionRejected,
    ]
    rejected = parsed[2]
    assert isinstance(rejected, ConnectionRejected)
    assert rejected.code == "plaintext_secret"
    assert str(rejected.request_event_id) == requests[2]["event_id"]
    assert all(STRIPE_KEY.encode() not in answer for answer in answers)
    assert world.stripe.calls == ["account"]
