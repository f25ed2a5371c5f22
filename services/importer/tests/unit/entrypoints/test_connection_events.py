"""The ``connections.v1`` consumer: which events start, resume or stop imports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.events import (
    ConnectionLost,
    ImportFailed,
    ImportRequested,
    ImportStarted,
    Mode,
    Processor,
    ProcessorConnected,
    ProcessorDisconnected,
    ProcessorSkipped,
)
from contracts.runtime.dead_letter import DeadLetter
from importer.domain.model import ImportStatus
from importer.domain.source import FetchedPage, PageQuery
from importer.entrypoints.connections import connection_dead_letter_handler, connection_event_handler
from importer.service.dependencies import STRIPE_FIRST_WINDOWS, Dependencies
from importer_fakes import (
    InMemoryAnnouncedImports,
    InMemoryImportRepository,
    InMemoryPageLedger,
    InMemoryRecordStore,
    InMemoryRecoveredRevenueSources,
    RecordingPublisher,
)


class OneResourceSource:
    def resources(self) -> Sequence[str]:
        return ["customers"]

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        return FetchedPage(objects=[], next_cursor=None)

    async def aclose(self) -> None:
        return None


class Sources:
    def __init__(self) -> None:
        self.forgotten: list[str] = []

    async def source_for(self, job: Any) -> OneResourceSource:
        return OneResourceSource()

    def forget(self, connection_id: str) -> None:
        self.forgotten.append(connection_id)

    async def replaced_since(self, job: Any, refused_version: int | None) -> bool:
        return False


def deps() -> tuple[Dependencies, InMemoryImportRepository, RecordingPublisher]:
    imports, records, bus = InMemoryImportRepository(), InMemoryRecordStore(), RecordingPublisher()
    dependencies = Dependencies(
        imports=imports,
        ledger=InMemoryPageLedger(),
        records=records,
        events=bus,
        record_publisher=bus,
        page_publisher=bus,
        sources=Sources(),
        queries=records,
        announced=InMemoryAnnouncedImports(),
        recovered_revenue=InMemoryRecoveredRevenueSources(records),
    )
    return dependencies, imports, bus


def connected(import_id: str | None) -> ProcessorConnected:
    return ProcessorConnected(
        account_id="acct_1",
        connection_id="conn_1",
        processor=Processor.STRIPE,
        mode=Mode.LIVE,
        processor_account_id="acct_stripe",
        contact_email="owner@example.com",
        import_id=import_id,
    )


async def test_processor_connected_starts_the_import_it_names() -> None:
    dependencies, imports, bus = deps()

    await connection_event_handler(dependencies)(connected("imp_named"))

    assert list(imports.jobs) == ["imp_named"]
    assert imports.jobs["imp_named"].status is ImportStatus.RUNNING
    # Customers grow with the business: a Stripe import reads them through its first windows from
    # the start, which together cover everything created up to the import's creation, once.
    windows = [page.query.window for _, page in bus.pages]
    assert [page.resource for _, page in bus.pages] == ["customers"] * STRIPE_FIRST_WINDOWS
    oldest_first = sorted(windows, key=lambda window: window.created_lt or 0)
    assert oldest_first[0].created_gte is None
    assert [window.created_gte for window in oldest_first[1:]] == [
        window.created_lt for window in oldest_first[:-1]
    ]
    assert oldest_first[-1].created_lt == int(imports.jobs["imp_named"].created_at.timestamp()) + 1
    assert len(bus.events_of(ImportStarted)) == 1


async def test_without_an_import_id_the_same_event_always_starts_the_same_import() -> None:
    dependencies, imports, bus = deps()
    event = connected(None)
    handle = connection_event_handler(dependencies)

    await handle(event)
    await handle(event)

    assert len(imports.jobs) == 1
    assert len(bus.events_of(ImportStarted)) == 1


async def test_import_requested_starts_a_fresh_import_and_disconnection_stops_it() -> None:
    dependencies, imports, bus = deps()
    handle = connection_event_handler(dependencies)
    await handle(
        ImportRequested(
            account_id="acct_1",
            connection_id="conn_1",
            processor=Processor.CHARGEBEE,
            mode=Mode.TEST,
            processor_account_id="acme-test",
            contact_email="owner@example.com",
            import_id="imp_resync",
        )
    )

    await handle(ProcessorDisconnected(account_id="acct_1", connection_id="conn_1"))

    assert imports.jobs["imp_resync"].status is ImportStatus.FAILED
    assert [event.code for event in bus.events_of(ImportFailed)] == ["disconnected"]
    assert isinstance(dependencies.sources, Sources)
    assert dependencies.sources.forgotten == ["conn_1"]


async def test_a_lost_connection_stops_its_sync_and_ends_its_imports_once() -> None:
    dependencies, imports, bus = deps()
    stopped: list[tuple[str, str]] = []

    async def stop_sync(connection_id: str, reason: str) -> bool:
        stopped.append((connection_id, reason))
        return True

    handle = connection_event_handler(dependencies, stop_sync=stop_sync)
    await handle(connected("imp_running"))
    lost = ConnectionLost(
        account_id="acct_1",
        connection_id="conn_1",
        processor=Processor.STRIPE,
        reason="deauthorized",
        contact_email="owner@example.com",
    )

    await handle(lost)
    await handle(lost)  # redelivered

    assert imports.jobs["imp_running"].status is ImportStatus.FAILED
    assert [event.code for event in bus.events_of(ImportFailed)] == ["deauthorized"]
    assert stopped == [("conn_1", "deauthorized"), ("conn_1", "deauthorized")]


async def test_a_connection_lost_read_after_its_reconnect_ends_nothing() -> None:
    dependencies, imports, bus = deps()

    async def reconnected_since(connection_id: str, reason: str) -> bool:
        return False

    handle = connection_event_handler(dependencies, stop_sync=reconnected_since)
    await handle(connected("imp_after_reconnect"))

    await handle(
        ConnectionLost(
            account_id="acct_1", connection_id="conn_1", processor=Processor.STRIPE, reason="deauthorized"
        )
    )

    assert imports.jobs["imp_after_reconnect"].status is ImportStatus.RUNNING
    assert bus.events_of(ImportFailed) == []


async def test_other_connection_events_change_nothing() -> None:
    dependencies, imports, bus = deps()

    await connection_event_handler(dependencies)(ProcessorSkipped(account_id="acct_1", disabled_features=[]))

    assert imports.jobs == {}
    assert bus.events == []


async def test_a_trigger_that_could_not_be_handled_fails_its_import_once() -> None:
    dependencies, imports, bus = deps()
    letter = DeadLetter(
        "connections.v1", b"acct_1", connected("imp_x").model_dump_json().encode(), 5, RuntimeError("x")
    )

    await connection_dead_letter_handler(dependencies)(letter)
    await connection_dead_letter_handler(dependencies)(letter)

    assert imports.jobs["imp_x"].status is ImportStatus.FAILED
    assert [event.code for event in bus.events_of(ImportFailed)] == ["start_failed"]
