"""The ``import_counts`` collection: one document per import (``_id`` = import id), counts by resource.

Counts are written with ``$max`` so that redelivered or reordered events can only raise them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from connector.domain.import_counts import ImportCounts

IMPORT_COUNTS_COLLECTION: Final = "import_counts"
#: Resource names become field names: anything else (a dot, a dollar) is not stored.
_RESOURCE_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Document = dict[str, Any]


class MongoImportCounts:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._counts = db[IMPORT_COUNTS_COLLECTION]

    async def record(
        self,
        account_id: str,
        import_id: str,
        resources: Mapping[str, int],
        *,
        at: datetime,
        past_cancellations: int | None = None,
    ) -> None:
        highest: Document = {
            f"resources.{name}": count for name, count in resources.items() if _RESOURCE_NAME.match(name)
        }
        if past_cancellations is not None:
            highest["past_cancellations"] = past_cancellations
        update: Document = {"$setOnInsert": {"account_id": account_id}, "$max": {"updated_at": at}}
        update["$max"].update(highest)
        await self._counts.update_one({"_id": import_id, "account_id": account_id}, update, upsert=True)

    async def counts_of(self, account_id: str, import_id: str) -> ImportCounts | None:
        document = await self._counts.find_one({"_id": import_id, "account_id": account_id})
        if document is None:
            return None
        resources = document.get("resources") or {}
        cancellations = document.get("past_cancellations")
        return ImportCounts(
            import_id=import_id,
            resources={str(name): int(count) for name, count in resources.items()},
            past_cancellations=None if cancellations is None else int(cancellations),
        )
