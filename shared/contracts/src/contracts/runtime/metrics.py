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
