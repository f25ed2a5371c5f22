"""The connector's own Prometheus metrics, beside the runtime's, on ``/metrics``."""

from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter, Histogram

HTTP_REQUESTS: Final = Histogram(
    "connector_http_request_duration_seconds",
    "HTTP requests served by the connector, by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
ONBOARDING_REQUESTS: Final = Counter(
    "connector_onboarding_requests_total",
    "Onboarding requests taken from Kafka, by event type and outcome",
    ["type", "outcome"],
    registry=REGISTRY,
)
