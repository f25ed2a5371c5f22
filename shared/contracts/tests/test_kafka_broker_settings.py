"""The shared broker recipe: its own errors are logged, its producer compresses."""

import logging

import pytest
from aiokafka.codec import has_zstd
from aiokafka.errors import TopicAuthorizationFailedError
from contracts import topics
from contracts.events import CONNECTION_EVENTS, Event
from contracts.runtime.kafka import BROKER_LOGGER, COMPRESSION, build_broker, subscribe_events
from contracts.runtime.settings import CommonSettings
from faststream.kafka import KafkaBroker


def broker_with_a_subscriber() -> KafkaBroker:
    broker = build_broker(CommonSettings(), service="test")

    async def handle(event: Event) -> None:
        return None

    subscribe_events(broker, topics.CONNECTIONS, group_id="g", events=CONNECTION_EVENTS, handler=handle)
    return broker


def test_the_broker_logs_a_denied_fetch_and_keeps_its_per_message_lines_below_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = broker_with_a_subscriber()
    broker.config.logger._setup(broker.config.context)  # what starting the broker does
    [subscriber] = broker.subscribers
    caplog.set_level(logging.DEBUG)

    # What faststream's fetch loop does when the cluster refuses a Read (a missing ACL), then what it
    # does for each message it receives.
    subscriber._log(logging.ERROR, "Kafka error occurred", exc_info=TopicAuthorizationFailedError())
    subscriber._log(None, "Received")

    lines = [record for record in caplog.records if record.name == BROKER_LOGGER]
    assert [(record.levelno, record.getMessage()) for record in lines] == [
        (logging.ERROR, "Kafka error occurred")
    ]
    assert lines[0].exc_info is not None
    assert isinstance(lines[0].exc_info[1], TopicAuthorizationFailedError)


def test_the_producer_compresses_with_a_codec_that_is_installed() -> None:
    broker = broker_with_a_subscriber()
    assert COMPRESSION == "zstd"
    assert has_zstd()
    assert broker._connection_kwargs["compression_type"] == COMPRESSION
