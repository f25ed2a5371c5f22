"""Sync on the real store: a read is stored only over an older one; whether an import runs (sync's
rate share)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from contracts.events import Processor
from contracts.records import CustomerRecord
from importer.adapters.mongo_sync import MongoSyncRecords
from importer.adapters.sync_readers import ImportWatch
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def customer(name: str) -> CustomerRecord:
    return CustomerRecord(account_id="acc_1", processor=Processor.STRIPE, object_id="cus_1", name=name)


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
