"""Sync's start after an import on the real store: only for a connection still connected, also when
a loss or an erase lands between the check and the write of the sync state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import pytest_asyncio
from contracts.connections import CONNECTIONS_COLLECTION, ConnectionStatus, StoredConnection
from contracts.events import ImportCompleted, Processor
from contracts.sync import SYNC_STATE_COLLECTION, SyncStatus
from importer.adapters.mongo_imports import MongoImportRepository
from importer.adapters.mongo_sync import MongoSyncStateStore
from importer.domain.model import ImportJob, ImportStatus
from importer.domain.sync_ports import SyncReader
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_lifecycle import start_after_import
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = [pytest.mark.infra]

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
Database = AsyncDatabase[dict[str, Any]]


@pytest_asyncio.fixture
async def database(mongodb_url: str) -> AsyncIterator[Database]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"t_sync_start_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


class Readers:
    """Only what starting a sync uses: dropping a connection's cached reader."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    async def reader_for(self, connection_id: str, account_id: str) -> SyncReader:
        raise AssertionError("starting a sync reads no processor")

    async def connection(self, connection_id: str) -> StoredConnection | None:
        raise AssertionError("the lookup given to start_after_import is used")

    def forget(self, connection_id: str) -> None:
        self.forgotten.append(connection_id)


async def completed_import(database: Database) -> tuple[str, ImportCompleted]:
    """A connected Stripe connection whose import completed; its id and the completion."""
    connection_id, account_id, import_id = (f"{p}_{uuid.uuid4().hex[:8]}" for p in ("con", "acc", "imp"))
    await database[CONNECTIONS_COLLECTION].insert_one(
        {
            "_id": connection_id,
            "account_id": account_id,
            "processor": "stripe",
            "status": ConnectionStatus.CONNECTED.value,
            "processor_account_id": "acct_1",
            "credentials_ciphertext": "gAAAA-key",
            "created_at": NOW - timedelta(hours=1),
            "connected_at": NOW - timedelta(hours=1),
        }
    )
    job = ImportJob(
        import_id=import_id,
        account_id=account_id,
        connection_id=connection_id,
        processor=Processor.STRIPE,
        contact_email="owner@example.com",
        status=ImportStatus.COMPLETED,
        created_at=NOW - timedelta(minutes=30),
    )
    assert await MongoImportRepository(database).create(job)
    event = ImportCompleted(
        account_id=account_id,
        import_id=import_id,
        processor=Processor.STRIPE,
        resources={},
        past_cancellations=0,
        started_at=job.created_at,
        finished_at=NOW,
        contact_email=job.contact_email,
    )
    return connection_id, event


def dependencies(database: Database, readers: Readers) -> SyncDependencies:
    return SyncDependencies(
        states=MongoSyncStateStore(database),
        records=cast(Any, None),
        readers=readers,
        publisher=cast(Any, None),
        start_full_import=cast(Any, None),
        interval_s=5,
        clock=lambda: NOW,
    )


def lookup(
    database: Database, between: Callable[[], Awaitable[None]] | None = None
) -> Callable[[str], Awaitable[StoredConnection | None]]:
    """Reads the stored connection; ``between`` runs once, right after the first read (what lands
    between the check and the write)."""
    pending = [between] if between is not None else []

    async def connection_of(connection_id: str) -> StoredConnection | None:
        document = await database[CONNECTIONS_COLLECTION].find_one({"_id": connection_id})
        if pending:
            await pending.pop()()
        return None if document is None else StoredConnection.model_validate(document)

    return connection_of


async def test_a_connected_connection_starts_syncing(database: Database) -> None:
    connection_id, event = await completed_import(database)

    started = await start_after_import(
        dependencies(database, Readers()), MongoImportRepository(database), lookup(database), event
    )

    assert started
    state = await database[SYNC_STATE_COLLECTION].find_one({"_id": connection_id})
    assert state is not None
    assert state["status"] == SyncStatus.CATCHING_UP.value


async def test_a_completion_consumed_after_a_loss_starts_nothing(database: Database) -> None:
    connection_id, event = await completed_import(database)
    await database[CONNECTIONS_COLLECTION].update_one(
        {"_id": connection_id}, {"$set": {"status": ConnectionStatus.NEEDS_RECONNECT.value}}
    )

    started = await start_after_import(
        dependencies(database, Readers()), MongoImportRepository(database), lookup(database), event
    )

    assert not started
    assert await database[SYNC_STATE_COLLECTION].find_one({"_id": connection_id}) is None


async def test_an_erase_landing_while_the_sync_starts_leaves_no_state(database: Database) -> None:
    connection_id, event = await completed_import(database)

    async def erased() -> None:
        # The connector disconnects with erase; the importer's erase removes the sync state first.
        await database[CONNECTIONS_COLLECTION].update_one(
            {"_id": connection_id},
            {
                "$set": {"status": ConnectionStatus.DISCONNECTED.value},
                "$unset": {"credentials_ciphertext": ""},
            },
        )
        await database[SYNC_STATE_COLLECTION].delete_many({"_id": connection_id})

    readers = Readers()
    started = await start_after_import(
        dependencies(database, readers), MongoImportRepository(database), lookup(database, erased), event
    )

    assert not started
    assert await database[SYNC_STATE_COLLECTION].count_documents({}) == 0
    assert connection_id in readers.forgotten


async def test_a_loss_landing_while_the_sync_starts_leaves_it_stopped(database: Database) -> None:
    connection_id, event = await completed_import(database)
    deps = dependencies(database, Readers())

    async def lost() -> None:
        # The connector moves the connection; its ConnectionLost stops a sync that is not there yet.
        await database[CONNECTIONS_COLLECTION].update_one(
            {"_id": connection_id}, {"$set": {"status": ConnectionStatus.NEEDS_RECONNECT.value}}
        )
        await deps.states.stop(connection_id, "credentials_rejected", NOW)

    started = await start_after_import(deps, MongoImportRepository(database), lookup(database, lost), event)

    assert not started
    state = await database[SYNC_STATE_COLLECTION].find_one({"_id": connection_id})
    assert state is not None
    assert state["status"] == SyncStatus.STOPPED.value
