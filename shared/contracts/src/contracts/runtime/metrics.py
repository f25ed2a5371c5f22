"""Prometheus metrics every service exposes on ``/metrics`` beside faststream's own."""

from typing import Final

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, Counter

REGISTRY: Final = CollectorRegistry(auto_describe=True)
# The process (CPU, memory, open files: process_*), its garbage collector (python_gc_*) and the
# interpreter (python_info), as the default registry has them.
for _collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
    REGISTRY.register(_collector)

HANDLER_RETRIES: Final = Counter(
    "consumer_handler_retries_total",
    "Message handler attempts that failed and were retried after a backoff",
    ["topic"],
    registry=REGISTRY,
)
DEAD_LETTERED: Final = Counter(
    "consumer_messages_dead_lettered_total",
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
