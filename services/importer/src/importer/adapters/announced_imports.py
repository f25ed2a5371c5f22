"""The imports the connector announced, read from the shared ``connections`` collection."""

from __future__ import annotations

from typing import Any

from contracts.connections import (
    CONNECTIONS_COLLECTION,
    LATEST_IMPORT_FIELD,
    AnnouncedImport,
    StoredConnection,
)
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from importer.domain.model import ImportJob, ImportStatus


class MongoAnnouncedImports:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._connections = database[CONNECTIONS_COLLECTION]

    async def latest(self, account_id: str) -> ImportJob | None:
        document = await self._connections.find_one(
            {"account_id": account_id, f"{LATEST_IMPORT_FIELD}.import_id": {"$exists": True}},
            sort=[(f"{LATEST_IMPORT_FIELD}.requested_at", DESCENDING)],
        )
        return None if document is None else announced_job(document)


def announced_job(document: dict[str, Any]) -> ImportJob | None:
    """The queued job a connection document announces, ``None`` when it announces none."""
    connection = StoredConnection.model_validate(document)
    if connection.processor is None or not document.get(LATEST_IMPORT_FIELD):
        return None
    announced = AnnouncedImport.model_validate(document[LATEST_IMPORT_FIELD])
    return ImportJob(
        import_id=announced.import_id,
        account_id=connection.account_id,
        connection_id=connection.connection_id,
        processor=connection.processor,
        contact_email=connection.contact_email or "",
        status=ImportStatus.QUEUED,
        created_at=announced.requested_at,
        mode=connection.mode,
    )
