"""The ``onboarding_links`` collection: the ids of onboarding links already followed, until they expire."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from connector.adapters.mongo_store import ONBOARDING_LINKS_COLLECTION, Document


class MongoOnboardingLinks:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._links = db[ONBOARDING_LINKS_COLLECTION]

    async def claim(self, link_id: str, expires_at: datetime) -> bool:
        # The unique _id makes the first use win, however many replicas see the link at once.
        try:
            await self._links.insert_one(
                {"_id": hashlib.sha256(link_id.encode()).hexdigest(), "expires_at": expires_at}
            )
        except DuplicateKeyError:
            return False
        return True
