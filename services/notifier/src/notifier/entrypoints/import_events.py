"""The ``imports.v1`` subscriber of consumer group ``notifier-imports``: each event goes to the use case."""

from __future__ import annotations

from typing import Final

from contracts import topics
from contracts.events import IMPORT_EVENTS, Event
from contracts.runtime.kafka import subscribe_events
from faststream.kafka import KafkaBroker

from notifier.service.notify_import_outcome import NotifyImportOutcome

#: One group per subscription: a replay of imports.v1 for it reaches no other consumer.
CONSUMER_GROUP: Final = "notifier-imports"


def subscribe_import_events(broker: KafkaBroker, notify: NotifyImportOutcome) -> None:
    """Offsets are committed once the use case returns, so a crash means redelivery, never loss."""

    async def on_import_event(event: Event) -> None:
        await notify(event)

    subscribe_events(
        broker,
        topics.IMPORTS,
        group_id=CONSUMER_GROUP,
        events=IMPORT_EVENTS,
        handler=on_import_event,
    )
