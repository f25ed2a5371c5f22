"""The import the connector announced is the importer's to show from the moment it was asked for.

The connector writes the connection document (its ``latest_import`` in the same change that queues the
event); the importer, before it has consumed that event, reads the announcement from the same store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.adapters.mongo_connections import MongoConnectionStore
from connector.domain.connection import Connection, ImportStatus, LatestImport
from contracts.connections import ConnectionStatus
from contracts.events import Mode, Processor
from contracts.runtime.mongo import mongo_client
from importer.adapters.announced_imports import MongoAnnouncedImports
from importer.domain.model import ImportStatus as ImporterStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def connected(account_id: str, connection_id: str, import_id: str, requested_at: datetime) -> Connection:
    return Connection(
        connection_id=connection_id,
        account_id=account_id,
        processor=Processor.CHARGEBEE,
        status=ConnectionStatus.CONNECTED,
        mode=Mode.TEST,
        site="acme-test",
        contact_email="owner@example.com",
        credentials_ciphertext="not-read-here",
        created_at=requested_at,
        connected_at=requested_at,
        latest_import=LatestImport(
            import_id=import_id, status=ImportStatus.QUEUED, requested_at=requested_at
        ),
    )


async def test_the_importer_reads_the_connectors_announcement_from_the_shared_store(
    mongodb_url: str, mongodb_database: str
) -> None:
    client = mongo_client(mongodb_url, service="importer")
    try:
        database = client[mongodb_database]
        connections = MongoConnectionStore(database)
        announced = MongoAnnouncedImports(database)
        assert await announced.latest("acct_new") is None

        await connections.open(connected("acct_new", "con_1", "imp_1", T0), [])
        await connections.open(connected("acct_other", "con_2", "imp_2", T0 + timedelta(minutes=1)), [])

        job = await announced.latest("acct_new")
        assert job is not None
        assert (job.import_id, job.status, job.processor, job.connection_id) == (
            "imp_1",
            ImporterStatus.QUEUED,
            Processor.CHARGEBEE,
            "con_1",
        )
        assert job.created_at == T0
    finally:
        await client.close()
