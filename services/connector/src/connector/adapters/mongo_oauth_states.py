"""The ``oauth_states`` collection: a pending OAuth grant per state, consumed once, expiring."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from connector.adapters.mongo_store import OAUTH_STATES_COLLECTION, Document
from connector.domain.oauth import OAuthGrant


class MongoOAuthStateStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._states = db[OAUTH_STATES_COLLECTION]

    async def save(self, grant: OAuthGrant) -> None:
        await self._states.insert_one(
            {
                "_id": grant.state_digest,
                "connection_id": grant.connection_id,
                "account_id": grant.account_id,
                "expires_at": grant.expires_at,
            }
        )

    async def consume(self, state_digest: str, now: datetime) -> OAuthGrant | None:
        document = await self._states.find_one_and_delete({"_id": state_digest, "expires_at": {"$gt": now}})
        if document is None:
            return None
        return OAuthGrant(
            state_digest=state_digest,
            connection_id=str(document["connection_id"]),
            account_id=str(document["account_id"]),
            expires_at=document["expires_at"],
        )

    async def discard_for(self, connection_id: str) -> None:
        await self._states.delete_many({"connection_id": connection_id})
