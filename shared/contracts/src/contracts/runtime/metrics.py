"""Prometheus metrics every service exposes on ``/metrics`` beside faststream's own."""

from typing import Final

from prometheus_client import CollectorRegistry, Counter

REGISTRY: Final = CollectorRegistry(auto_describe=True)

HANDLER_RETRIES: Final = Counter(
    "handler_retries_total",
    "Message handler attempts that failed and were retried after a backoff",
    ["topic"],
    registry=REGISTRY,
)
DEAD_LETTERED: Final = Counter(
    "messages_dead_lettered_total",
    "Messages sent to a dead-letter topic after bounded retries",
    ["topic"],
    registry=REGISTRY,
)
OUTAGE_WAITS: Final = Counter(
    "consumer_outage_waits_total",
    "Message tries put off because a dependency (store, broker, mail server) could not be reached",
    ["topic"],
    registry=REGISTRY,
)
