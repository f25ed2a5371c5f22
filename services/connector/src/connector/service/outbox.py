"""Publishing the events a state change caused: right after it, and again later if that failed.

Each event is written into the document it concerns, in the same write as the change, and removed
once published. A crash or a broker outage between the two therefore delays an event, never loses
it; consumers are idempotent on ``event_id``, so publishing one twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from contracts.runtime.logging import get_logger

from connector.domain.ports import Outgoing
from connector.service.dependencies import Dependencies

RELAY_BATCH_SIZE: Final = 100

_log = get_logger(__name__)


async def deliver(deps: Dependencies, connection_id: str, outgoing: Sequence[Outgoing]) -> bool:
    """Publish ``outgoing`` in order; whatever could not be published stays for the relay."""
    published: list[str] = []
    try:
        for item in outgoing:
            await deps.events.publish(item.topic, item.event)
            published.append(str(item.event.event_id))
    except Exception as error:
        _log.warning(
            "outbox.publish_deferred",
            connection_id=connection_id,
            published=len(published),
            pending=len(outgoing) - len(published),
            error_type=type(error).__name__,
        )
    if published:
        try:
            await deps.connections.mark_published(connection_id, published)
        except Exception as error:
            # Left in the outbox, so published once more later: harmless for idempotent consumers.
            _log.warning("outbox.mark_failed", connection_id=connection_id, error_type=type(error).__name__)
    return len(published) == len(outgoing)


async def relay_unpublished(deps: Dependencies, *, older_than: timedelta) -> int:
    """Publish events left behind for longer than ``older_than``; how many were published."""
    queued_before = deps.clock() - older_than
    count = 0
    for connection_id, outgoing in await deps.connections.unpublished(
        queued_before=queued_before, limit=RELAY_BATCH_SIZE
    ):
        if await deliver(deps, connection_id, outgoing):
            count += len(outgoing)
        else:
            break
    if count:
        _log.info("outbox.relayed", events=count)
    return count
