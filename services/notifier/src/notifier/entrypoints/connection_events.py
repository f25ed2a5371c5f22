"""The ``connections.v1`` subscriber of consumer group ``notifier-connections``: each event goes to
the lost-connection use case (which ignores all but ``ConnectionLost``)."""

from __future__ import annotations

from typing import Final

from contracts import topics
from contracts.events import CONNECTION_EVENTS, Event
from contracts.runtime.kafka import subscribe_events
from faststream.kafka import KafkaBroker

from notifier.service.notify_connection_lost import NotifyConnectionLost

#: One group per subscription: this one's offsets never hold back the imports.v1 one.
CONSUMER_GROUP: Final = "notifier-connections"


def subscribe_connection_events(broker: KafkaBroker, notify: NotifyConnectionLost) -> None:
    """Offsets are committed once the use case returns, so a crash means redelivery, never loss."""

    async def on_connection_event(event: Event) -> None:
        await notify(event)

    subscribe_events(
        broker,
        topics.CONNECTIONS,
        group_id=CONSUMER_GROUP,
        events=CONNECTION_EVENTS,
        handler=on_connection_event,
    )
