"""The importer's ``imports.v1`` events: how an import went (``GET …/connection``) and its counts."""

from __future__ import annotations

import time
from typing import Final

import structlog
from contracts.events import IMPORT_EVENTS, Event, ImportProgressed
from contracts.runtime.kafka import subscribe_events
from contracts.runtime.logging import get_logger
from contracts.topics import IMPORTS
from faststream.kafka import KafkaBroker

from connector.service.dependencies import Dependencies
from connector.service.import_counts import record_import_counts
from connector.service.track_imports import track_import

#: One group per subscription: scaling or replaying it moves no other consumer of the connector.
CONSUMER_GROUP: Final = "connector-imports"

_log = get_logger("connector.imports")


def subscribe_import_progress(broker: KafkaBroker, deps: Dependencies) -> None:
    async def handle(event: Event) -> None:
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(account_id=event.account_id):
            # Counts first, so that an import shown as completed already shows its final counts.
            counted = await record_import_counts(deps, event)
            outcome = counted if isinstance(event, ImportProgressed) else await track_import(deps, event)
            _log.info(
                "import.tracked",
                event_type=event.type,
                import_id=getattr(event, "import_id", None),
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )

    subscribe_events(broker, IMPORTS, group_id=CONSUMER_GROUP, events=IMPORT_EVENTS, handler=handle)
