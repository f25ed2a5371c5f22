"""Sync on the real store: a read is stored only over an older one; whether an import runs (sync's
rate share)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from contracts.events import Processor
from contracts.records import CancellationRecord, CustomerRecord, Money
from importer.adapters.mongo_records import MongoRecordStore
from importer.adapters.mongo_sync import MongoSyncRecords, MongoSyncStateStore
from importer.adapters.sync_readers import ImportWatch
from importer.domain.sync import SyncState
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def customer(name: str, object_id: str = "cus_1", created: int | None = None) -> CustomerRecord:
    return CustomerRecord(
        account_id="acc_1",
        processor=Processor.STRIPE,
        object_id=object_id,
        name=name,
        created_at=None if created is None else datetime.fromtimestamp(created, UTC),
    )


@pytest_asyncio.fixture
async def database(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        yield client[mongodb_database]
    finally:
        await client.close()


async def stored_name(database: AsyncDatabase[dict[str, Any]]) -> tuple[str, int | None]:
    document = await database.customers.find_one({"_id": customer("").key()})
    assert document is not None
    return document["name"], document.get("sync_version")


async def test_a_read_is_stored_over_an_older_one_and_never_under_a_newer_one(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    records = MongoSyncRecords(database)

    assert await records.put(customer("first"), 100, NOW)
    assert await stored_name(database) == ("first", 100)
    assert await records.put(customer("newer"), 200, NOW)
    assert await records.put(customer("same read again"), 200, NOW)
    assert await stored_name(database) == ("same read again", 200)

    assert not await records.put(customer("older"), 150, NOW)
    assert await stored_name(database) == ("same read again", 200)
    assert await database.customers.count_documents({}) == 1


async def test_an_imported_record_without_a_version_is_replaced_by_the_first_sync(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    imported = {"_id": customer("").key(), **customer("imported").model_dump(), "import_id": "imp_1"}
    await database.customers.insert_one(imported)

    assert await MongoSyncRecords(database).put(customer("synced"), 1, NOW)
    assert await stored_name(database) == ("synced", 1)


async def test_a_page_is_stored_together_each_record_only_over_an_older_read(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    records = MongoSyncRecords(database)
    assert await records.put(customer("newer", "cus_2"), 300, NOW)

    written = await records.put_many(
        [
            (customer("listed", "cus_1"), 200),
            (customer("listed", "cus_2"), 200),
            (customer("x", "cus_3"), 200),
        ],
        NOW,
    )

    assert written == [True, False, True]
    names = {d["object_id"]: (d["name"], d["sync_version"]) async for d in database.customers.find()}
    assert names == {"cus_1": ("listed", 200), "cus_2": ("newer", 300), "cus_3": ("x", 200)}


async def test_an_unchanged_record_only_has_its_version_moved_on_from_the_one_known(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    records = MongoSyncRecords(database)
    await records.put(customer("a", "cus_1"), 100, NOW)
    await records.put(customer("b", "cus_2"), 100, NOW)

    assert await records.move_versions([(customer("a", "cus_1"), 100, 200)])
    # cus_2 was written again meanwhile (version 150): not moved, and said so.
    await records.put(customer("b2", "cus_2"), 150, NOW)
    assert not await records.move_versions(
        [(customer("a", "cus_1"), 200, 300), (customer("b", "cus_2"), 100, 300)]
    )

    stored = {d["object_id"]: (d["name"], d["sync_version"]) async for d in database.customers.find()}
    assert stored == {"cus_1": ("a", 300), "cus_2": ("b2", 150)}


async def test_sync_splits_a_listing_where_the_stored_records_were_created(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    records = MongoSyncRecords(database)
    await records.put(customer("a", "cus_1", created=1_700_000_000), 1, NOW)
    await records.put(customer("b", "cus_2"), 1, NOW)  # no creation time

    assert await records.created_times("customers", "acc_1", "stripe") == [1_700_000_000]
    assert await records.created_times("customers", "acc_2", "stripe") == []


async def test_concurrent_webhooks_share_the_sync_state_look_up_and_record(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    states = MongoSyncStateStore(database)
    await states.begin(SyncState("con_1", "acc_1", Processor.STRIPE, "acct_1", "live", 1), NOW, 60)

    running = await asyncio.gather(*(states.running_for("stripe", "acct_1") for _ in range(20)))
    assert {tuple(s.connection_id for s in found) for found in running} == {("con_1",)}
    await asyncio.gather(
        *(states.record_applied("con_1", f"evt_{n}", NOW + timedelta(seconds=n)) for n in range(50))
    )

    stored = await database.sync_state.find_one({"_id": "con_1"})
    assert stored is not None
    assert sorted(stored["applied_ids"]) == sorted(f"evt_{n}" for n in range(50))
    assert stored["last_event_at"] == NOW + timedelta(seconds=49)
    # A look-up started after a stop sees it, however many share it.
    await states.stop("con_1", "test", NOW)
    assert await asyncio.gather(*(states.running_for("stripe", "acct_1") for _ in range(5))) == [[]] * 5


async def test_sync_knows_from_the_store_whether_an_import_of_the_connection_is_unfinished(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    clock = [0.0]
    watch = ImportWatch(database, ttl_s=1.0, clock=lambda: clock[0])
    await database.imports.insert_one({"_id": "imp_1", "connection_id": "con_1", "status": "completed"})
    assert not await watch.importing("con_1")

    await database.imports.insert_one({"_id": "imp_2", "connection_id": "con_1", "status": "running"})
    assert not await watch.importing("con_1")  # the answer is trusted for a second
    clock[0] = 1.0
    assert await watch.importing("con_1")
    assert not await watch.importing("con_2")

    await database.imports.update_one({"_id": "imp_2"}, {"$set": {"status": "finalizing"}})
    clock[0] = 2.0
    assert await watch.importing("con_1")
    await database.imports.update_one({"_id": "imp_2"}, {"$set": {"status": "failed"}})
    clock[0] = 3.0
    assert not await watch.importing("con_1")


async def test_a_reimport_leaves_a_record_sync_read_after_it_began_and_replaces_the_others(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    imports = MongoRecordStore(database, batch_wait_s=0.0)
    synced = MongoSyncRecords(database)
    first_import, reimport_began = NOW, NOW + timedelta(hours=1)
    await imports.write(
        "imp_first",
        [customer("imported", "cus_1"), customer("imported", "cus_2")],
        NOW,
        began_at=first_import,
    )
    # Sync applies two changes: one read before the re-import began, one after (Unix ms versions).
    ms = 1000
    assert await synced.put(customer("synced before", "cus_1"), int(reimport_began.timestamp() * ms) - 1, NOW)
    assert await synced.put(customer("synced after", "cus_2"), int(reimport_began.timestamp() * ms) + 1, NOW)

    # The re-import's pages (read at any time since it began) carry what the processor said then.
    await imports.write(
        "imp_again",
        [customer("re-imported", "cus_1"), customer("re-imported", "cus_2"), customer("new", "cus_3")],
        reimport_began,
        began_at=reimport_began,
    )

    names = {document["object_id"]: document["name"] async for document in database.customers.find()}
    assert names == {"cus_1": "re-imported", "cus_2": "synced after", "cus_3": "new"}


def cancellation(object_id: str) -> CancellationRecord:
    return CancellationRecord(
        account_id="acc_1",
        processor=Processor.STRIPE,
        object_id=object_id,
        customer_id="cus_1",
        subscription_id=object_id,
        canceled_at=NOW,
        mrr_lost=Money(amount=1000, currency="USD"),
    )


async def test_a_reimport_keeps_the_cancellations_sync_wrote_since_it_began(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    imports = MongoRecordStore(database, batch_wait_s=0.0)
    synced = MongoSyncRecords(database)
    reimport_began = NOW + timedelta(hours=1)
    began_ms = int(reimport_began.timestamp() * 1000)
    await imports.write("imp_first", [cancellation("sub_1"), cancellation("sub_2")], NOW, began_at=NOW)
    # sub_2 was cancelled again at the processor after the re-import began; sync stored that read.
    assert await synced.put(cancellation("sub_2"), began_ms + 1, NOW)
    # sub_3: sync stored it from a read before the re-import began, which did not derive it.
    assert await synced.put(cancellation("sub_3"), began_ms - 1, NOW)

    # The re-import derived none of them (reactivated when it read them): the earlier ones go.
    removed = await imports.remove_cancellations_not_in(
        "acc_1", "stripe", "imp_again", began_at=reimport_began
    )

    assert removed == 2
    assert [document["object_id"] async for document in database.cancellations.find()] == ["sub_2"]
