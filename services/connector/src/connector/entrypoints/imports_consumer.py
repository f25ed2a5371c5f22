"""The importer's ``imports.v1`` events, followed so ``GET …/connection`` can tell how the import went."""

from __future__ import annotations

import time
from typing import Final

import structlog
from contracts.events import IMPORT_EVENTS, Event, ImportProgressed
from contracts.runtime.kafka import subscribe_events
from contracts.runtime.logging import get_logger
from contracts.topics import IMPORTS
from faststream.kafka import KafkaBroker

from connector.service.context import Services
from connector.service.track_imports import track_import

CONSUMER_GROUP: Final = "connector"

_log = get_logger("connector.imports")


def subscribe_import_progress(broker: KafkaBroker, services: Services) -> None:
    async def handle(event: Event) -> None:
        if isinstance(event, ImportProgressed):
            return  # counts are the importer's to serve; only the status is kept here
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(account_id=event.account_id):
            outcome = await track_import(services, event)
            _log.info(
                "import.tracked",
                event_type=event.type,
                import_id=getattr(event, "import_id", None),
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )

    subscribe_events(broker, IMPORTS, group_id=CONSUMER_GROUP, events=IMPORT_EVENTS, handler=handle)
