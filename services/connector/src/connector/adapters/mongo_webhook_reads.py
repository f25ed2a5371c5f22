"""The two reads around webhooks: a Stripe account's connection (rare events) and sync states."""

from __future__ import annotations

from typing import Any

from contracts.connections import CONNECTIONS_COLLECTION
from contracts.events import Processor
from contracts.sync import SYNC_STATE_COLLECTION, StoredSyncState
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from connector.domain.connection import Connection


async def ensure_webhook_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db[CONNECTIONS_COLLECTION].create_index(
        [("processor_account_id", ASCENDING), ("processor", ASCENDING)], name="by_processor_account"
    )


class MongoStripeAccounts:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._connections = db[CONNECTIONS_COLLECTION]

    async def connection_of(self, stripe_account_id: str) -> Connection | None:
        document = await self._connections.find_one(
            {"processor": Processor.STRIPE.value, "processor_account_id": stripe_account_id},
            sort=[("active", DESCENDING), ("created_at", DESCENDING)],
        )
        return None if document is None else Connection.model_validate(document)


class MongoSyncStates:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._states = db[SYNC_STATE_COLLECTION]

    async def of(self, connection_id: str) -> StoredSyncState | None:
        document = await self._states.find_one({"_id": connection_id})
        return None if document is None else StoredSyncState.model_validate(document)
