"""The ``imports.v1`` consumer over faststream's in-memory broker: it keeps what the page shows."""

from __future__ import annotations

from connector.entrypoints.imports_consumer import subscribe_import_progress
from connector_fakes import World
from contracts.events import ImportCompleted, ImportProgressed, Processor, ResourceCount
from contracts.runtime.kafka import build_broker
from contracts.runtime.settings import CommonSettings
from contracts.topics import IMPORTS
from faststream.kafka import TestKafkaBroker
from onboarding_page_kit import with_import_counts


async def test_progress_and_completion_events_become_counts_per_resource(world: World) -> None:
    store = with_import_counts(world)
    broker = build_broker(CommonSettings(), service="connector")
    subscribe_import_progress(broker, world.deps)
    now = world.clock()
    events = [
        ImportProgressed(
            account_id="acct_feed", import_id="imp_feed", resources={"customers": ResourceCount(imported=10)}
        ),
        ImportCompleted(
            account_id="acct_feed",
            import_id="imp_feed",
            processor=Processor.STRIPE,
            resources={"customers": ResourceCount(imported=25), "invoices": ResourceCount(imported=90)},
            past_cancellations=4,
            started_at=now,
            finished_at=now,
            contact_email="o@a.example",
        ),
    ]

    async with TestKafkaBroker(broker):
        for event in events:
            await broker.publish(event.model_dump_json().encode(), topic=IMPORTS, key=event.key())

    counts = await store.counts_of("acct_feed", "imp_feed")
    assert counts is not None
    assert dict(counts.resources) == {"customers": 25, "invoices": 90}
    assert counts.past_cancellations == 4
