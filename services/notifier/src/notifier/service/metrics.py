"""The notifier's Prometheus counters, on the shared registry served at ``/metrics``."""

from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter

EMAILS_SENT: Final = Counter(
    "notifier_emails_sent_total",
    "Emails the mail server accepted",
    ["kind"],
    registry=REGISTRY,
)
EMAILS_FAILED: Final = Counter(
    "notifier_emails_failed_total",
    "Emails not sent: refused for good (permanent) or given up for this delivery (deferred)",
    ["kind", "reason"],
    registry=REGISTRY,
)
EMAILS_SUPPRESSED: Final = Counter(
    "notifier_emails_suppressed_total",
    "Deliveries of an event whose email was already sent, refused or being sent by another sender",
    ["kind"],
    registry=REGISTRY,
)
EMAILS_TAKEN_OVER: Final = Counter(
    "notifier_emails_taken_over_total",
    "Sends resumed after a sender's lease expired; the email may reach the contact twice",
    ["kind"],
    registry=REGISTRY,
)
RECEIPTS_DEFERRED: Final = Counter(
    "notifier_receipts_deferred_total",
    "EmailSent events that could not be published yet and were left to the relay",
    ["kind"],
    registry=REGISTRY,
)
