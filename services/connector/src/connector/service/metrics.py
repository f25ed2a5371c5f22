"""The connector's use-case metrics, beside the HTTP and intake ones of its entrypoints."""

from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter

CONNECTIONS_LOST: Final = Counter(
    "connector_connections_lost_total",
    "Connections moved to needs_reconnect because the processor refused their credentials, by reason",
    ["processor", "reason"],
    registry=REGISTRY,
)
