"""Use case: keep the importer's counts per resource, so the onboarding page can show live progress."""

from __future__ import annotations

from contracts.events import Event, ImportCompleted, ImportProgressed

from connector.service.dependencies import Dependencies


async def record_import_counts(deps: Dependencies, event: Event) -> str:
    """Record the counts ``event`` carries, if any; what was done, for the log."""
    if deps.import_counts is None:
        return "not_kept"
    match event:
        case ImportProgressed():
            past_cancellations = None
        case ImportCompleted():
            past_cancellations = event.past_cancellations
        case _:
            return "no_counts"
    await deps.import_counts.record(
        event.account_id,
        event.import_id,
        {name: count.imported for name, count in event.resources.items()},
        at=event.occurred_at,
        past_cancellations=past_cancellations,
    )
    return "counted"
