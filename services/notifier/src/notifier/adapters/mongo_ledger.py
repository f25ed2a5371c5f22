"""The send ledger in MongoDB: collection ``email_ledger``, one document per import email.

The unique ``_id`` (``"{import_id}:{kind}"``) makes the first claim an insert that only one sender
can win; every later move is a single-document update filtered on the state (and the owner), which
MongoDB applies atomically, so two senders can never both take or settle the same email.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from contracts.runtime.mongo import EMAIL_LEDGER_RETENTION, durable, ensure_retention
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from notifier.domain.ledger import Claimed, ClaimResult, LedgerEntry, NotClaimed, SendState
from notifier.domain.notices import EmailKind

COLLECTION: Final = "email_ledger"

Document = dict[str, Any]


def _claimable(now: datetime) -> Document:
    """Mirrors :meth:`LedgerEntry.is_claimable`: released, or sending under an expired lease."""
    return {
        "$or": [
            {"state": SendState.RELEASED.value},
            {"state": SendState.SENDING.value, "lease_expires_at": {"$lte": now}},
        ]
    }


class MongoEmailLedger:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._collection: AsyncCollection[Document] = durable(client[database][COLLECTION])

    async def ensure_indexes(self) -> None:
        """The relay's query; ``_id`` is unique already and is the one key that dedupes sends."""
        await self._collection.create_index(
            [("state", ASCENDING), ("event_published", ASCENDING), ("sent_at", ASCENDING)],
            name="unpublished_receipts",
        )
        await ensure_retention(self._collection, "created_at", EMAIL_LEDGER_RETENTION)

    async def claim(self, entry: LedgerEntry, *, now: datetime, lease: timedelta) -> ClaimResult:
        while True:
            try:
                await self._collection.insert_one(_to_document(entry))
            except DuplicateKeyError:
                pass
            else:
                return Claimed(entry, takeover=False)
            before = await self._collection.find_one_and_update(
                {"_id": entry.key, **_claimable(now)},
                {
                    "$set": {
                        "state": SendState.SENDING.value,
                        "owner": entry.owner,
                        "lease_expires_at": now + lease,
                        "updated_at": now,
                    },
                    "$inc": {"claims": 1},
                },
                return_document=ReturnDocument.BEFORE,
            )
            if before is not None:
                previous = _from_document(before)
                taken = previous.claimed_by(entry.owner or "", now, lease)
                return Claimed(taken, takeover=previous.state is SendState.SENDING)
            current = await self._collection.find_one({"_id": entry.key})
            if current is not None:
                return NotClaimed(_from_document(current))
            # Deleted between our insert and our read (an operator's cleanup): claim afresh.

    async def renew(self, key: str, owner: str, *, now: datetime, lease: timedelta) -> bool:
        result = await self._collection.update_one(
            {"_id": key, "owner": owner, "state": SendState.SENDING.value},
            {"$set": {"lease_expires_at": now + lease, "updated_at": now}},
        )
        return result.matched_count == 1

    async def mark_sent(self, key: str, owner: str, *, now: datetime) -> None:
        # Not filtered on the owner: the server took the email, so it is sent whoever holds the claim.
        await self._collection.update_one(
            {"_id": key, "state": {"$in": [SendState.SENDING.value, SendState.RELEASED.value]}},
            {
                "$set": {
                    "state": SendState.SENT.value,
                    "owner": owner,
                    "sent_at": now,
                    "event_published": False,
                    "updated_at": now,
                },
                "$unset": {"lease_expires_at": ""},
            },
        )

    async def mark_failed_permanent(self, key: str, owner: str, *, reason: str, now: datetime) -> bool:
        result = await self._collection.update_one(
            {"_id": key, "owner": owner, "state": SendState.SENDING.value},
            {
                "$set": {
                    "state": SendState.FAILED_PERMANENT.value,
                    "last_error": reason,
                    "failed_at": now,
                    "updated_at": now,
                },
                "$unset": {"lease_expires_at": ""},
            },
        )
        return result.matched_count == 1

    async def release(self, key: str, owner: str, *, reason: str, now: datetime) -> None:
        await self._collection.update_one(
            {"_id": key, "owner": owner, "state": SendState.SENDING.value},
            {
                "$set": {"state": SendState.RELEASED.value, "last_error": reason, "updated_at": now},
                "$unset": {"lease_expires_at": ""},
            },
        )

    async def mark_event_published(self, key: str, *, now: datetime) -> None:
        await self._collection.update_one(
            {"_id": key, "state": SendState.SENT.value},
            {"$set": {"event_published": True, "event_published_at": now, "updated_at": now}},
        )

    async def get(self, key: str) -> LedgerEntry | None:
        document = await self._collection.find_one({"_id": key})
        return None if document is None else _from_document(document)

    async def unpublished_receipts(self, *, sent_before: datetime, limit: int) -> list[LedgerEntry]:
        cursor = (
            self._collection.find(
                {"state": SendState.SENT.value, "event_published": False, "sent_at": {"$lte": sent_before}}
            )
            .sort("sent_at", ASCENDING)
            .limit(limit)
        )
        return [_from_document(document) async for document in cursor]


def _to_document(entry: LedgerEntry) -> Document:
    return {
        "_id": entry.key,
        "import_id": entry.import_id,
        "account_id": entry.account_id,
        "kind": entry.kind.value,
        "to": entry.to,
        "message_id": entry.message_id,
        "state": entry.state.value,
        "owner": entry.owner,
        "lease_expires_at": entry.lease_expires_at,
        "claims": entry.claims,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "sent_at": entry.sent_at,
        "event_published": entry.event_published,
        "last_error": entry.last_error,
    }


def _from_document(document: Mapping[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        key=document["_id"],
        import_id=document.get("import_id"),
        account_id=document["account_id"],
        kind=EmailKind(document["kind"]),
        to=document["to"],
        message_id=document["message_id"],
        state=SendState(document["state"]),
        owner=document.get("owner"),
        lease_expires_at=document.get("lease_expires_at"),
        claims=int(document.get("claims", 0)),
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        sent_at=document.get("sent_at"),
        event_published=bool(document.get("event_published", False)),
        last_error=document.get("last_error"),
    )
