"""What an SRE watches about sync: how far behind the processors the store is, and what it does.

``importer_sync_lag_seconds`` is the largest lag among the running syncs (now minus the instant up
to which every change of the account is applied), computed from the ``sync_state`` collection by
every importer process, so any replica's value is the system's. Alert on it (docs/operations.md).
"""

from __future__ import annotations

from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter, Gauge

SYNC_LAG: Final = Gauge(
    "importer_sync_lag_seconds",
    "Largest lag of a running sync: now minus the instant up to which its changes are applied",
    registry=REGISTRY,
)
SYNC_RUNNING: Final = Gauge(
    "importer_sync_connections", "Connections whose sync is running (not stopped)", registry=REGISTRY
)
SYNC_POLLS: Final = Counter(
    "importer_sync_polls_total",
    "Polls of accounts' event lists, by processor and outcome (polled; polled_partly: the poll's cap "
    "of pages cut the list, the next polls read on; stopped, full_import, skipped)",
    ["processor", "outcome"],
    registry=REGISTRY,
)
SYNC_OBJECTS: Final = Counter(
    "importer_sync_objects_total",
    "Objects re-read and applied by sync, by processor and outcome (applied, deleted, unchanged, ignored;"
    " covered: a later re-read already applied the change; listed: a listing of its resource did)",
    ["processor", "outcome"],
    registry=REGISTRY,
)
SYNC_WEBHOOK_EVENTS: Final = Counter(
    "importer_sync_webhook_events_total",
    "Webhook events taken from the sync topic, by processor and outcome",
    ["processor", "outcome"],
    registry=REGISTRY,
)
