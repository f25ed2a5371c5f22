"""Sync's storage: the ``sync_state`` collection and conditional writes of canonical records.

``sync_state`` (``contracts.sync``: the connector reads it for ``GET …/connection``) has one
document per connection; ``next_due_at`` says when its next poll is due. Every importer process
scans for due documents and claims each with one conditional update that moves ``next_due_at``
on, so however many processes run (and restart), each poll is asked for once.

Records written by sync carry ``sync_version``; a write is conditional on the stored version being
older (``domain.sync.supersedes``), and an upsert that loses that race finds the document and
fails on its ``_id``, which is how an older read is refused. A write also marks the record
``sync_unpublished`` until its ``billing.*`` message is out (:meth:`MongoSyncRecords.published`): a
record found equal to a newer read is left as it is (only its version moves on) and not published
again only when it carries no such mark, so a crash between the write and the publish still ends
with the record published by the next read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from contracts.events import Processor
from contracts.records import CanonicalRecord, CouponRecord
from contracts.sync import SYNC_STATE_COLLECTION, SyncStatus
from pymongo import ASCENDING, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from importer.adapters.mongo_records import record_document
from importer.adapters.mongo_store import raise_unless_duplicates
from importer.domain.sync import MAX_APPLIED_IDS, SyncState

Document = dict[str, Any]
SYNC_IMPORT_ID: Final = "sync"
VERSION_FIELD: Final = "sync_version"
#: Set by every sync write, removed once the record's message is published.
UNPUBLISHED_FIELD: Final = "sync_unpublished"


async def ensure_sync_indexes(database: AsyncDatabase[Document]) -> None:
    states = database[SYNC_STATE_COLLECTION]
    await states.create_index([("status", ASCENDING), ("next_due_at", ASCENDING)])
    await states.create_index([("sync_key", ASCENDING)])


def _state(document: Mapping[str, Any]) -> SyncState:
    return SyncState(
        connection_id=str(document["_id"]),
        account_id=str(document["account_id"]),
        processor=Processor(document["processor"]),
        processor_account_id=str(document["processor_account_id"]),
        status=str(document["status"]),
        cursor_s=int(document.get("cursor_s", 0)),
        applied_ids=tuple(document.get("applied_ids", ())),
        contact_email=str(document.get("contact_email") or ""),
        mode=document.get("mode"),
        last_event_at=document.get("last_event_at"),
        synced_through=document.get("synced_through"),
        resync_import_id=document.get("resync_import_id"),
    )


class MongoSyncStateStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._states = database[SYNC_STATE_COLLECTION]

    async def begin(self, state: SyncState, now: datetime, interval_s: float) -> None:
        await self._states.update_one(
            {"_id": state.connection_id},
            {
                "$set": {
                    "account_id": state.account_id,
                    "processor": state.processor.value,
                    "processor_account_id": state.processor_account_id,
                    "sync_key": f"{state.processor.value}:{state.processor_account_id}",
                    "status": state.status,
                    "cursor_s": state.cursor_s,
                    "applied_ids": list(state.applied_ids),
                    "contact_email": state.contact_email,
                    "mode": state.mode,
                    "interval_s": interval_s,
                    "next_due_at": now,
                    "started_at": now,
                    "updated_at": now,
                    "resync_import_id": None,
                    "stopped_reason": None,
                },
            },
            upsert=True,
        )

    async def get(self, connection_id: str) -> SyncState | None:
        document = await self._states.find_one({"_id": connection_id})
        return None if document is None else _state(document)

    async def running_for(self, processor: str, processor_account_id: str) -> list[SyncState]:
        cursor = self._states.find(
            {"sync_key": f"{processor}:{processor_account_id}", "status": {"$ne": SyncStatus.STOPPED.value}}
        )
        return [_state(document) async for document in cursor]

    async def claim_due(self, now: datetime, interval_s: float, limit: int) -> list[SyncState]:
        claimed: list[SyncState] = []
        running = {"$ne": SyncStatus.STOPPED.value}
        candidates = self._states.find(
            {"status": running, "next_due_at": {"$lte": now}}, {"_id": 1, "next_due_at": 1}
        ).limit(limit)
        async for candidate in candidates:
            # Conditional on the due time read: of several processes, one moves it on and wins.
            document = await self._states.find_one_and_update(
                {"_id": candidate["_id"], "status": running, "next_due_at": candidate["next_due_at"]},
                {"$set": {"next_due_at": now + timedelta(seconds=interval_s), "interval_s": interval_s}},
                return_document=ReturnDocument.AFTER,
            )
            if document is not None:
                claimed.append(_state(document))
        return claimed

    async def record_poll(
        self,
        connection_id: str,
        *,
        cursor_s: int,
        applied_ids: Sequence[str],
        last_event_at: datetime | None,
        synced_through: datetime,
        now: datetime,
    ) -> None:
        changes: Document = {
            "cursor_s": cursor_s,
            "applied_ids": list(applied_ids)[-MAX_APPLIED_IDS:],
            "synced_through": synced_through,
            "status": SyncStatus.LIVE.value,
            "polled_at": now,
            "updated_at": now,
        }
        update: Document = {"$set": changes}
        if last_event_at is not None:
            update["$max"] = {"last_event_at": last_event_at}
        await self._states.update_one(
            {"_id": connection_id, "status": {"$ne": SyncStatus.STOPPED.value}}, update
        )

    async def record_applied(self, connection_id: str, event_id: str, created: datetime) -> None:
        await self._states.update_one(
            {"_id": connection_id},
            {
                "$push": {"applied_ids": {"$each": [event_id], "$slice": -MAX_APPLIED_IDS}},
                "$max": {"last_event_at": created},
            },
        )

    async def catch_up_with_import(self, connection_id: str, import_id: str, now: datetime) -> None:
        await self._states.update_one(
            {"_id": connection_id},
            {
                "$set": {
                    "resync_import_id": import_id,
                    "status": SyncStatus.CATCHING_UP.value,
                    "updated_at": now,
                }
            },
        )

    async def stop(self, connection_id: str, reason: str, now: datetime) -> bool:
        result = await self._states.update_one(
            {"_id": connection_id, "status": {"$ne": SyncStatus.STOPPED.value}},
            {"$set": {"status": SyncStatus.STOPPED.value, "stopped_reason": reason, "updated_at": now}},
        )
        return result.modified_count > 0

    async def remove(self, connection_id: str) -> bool:
        result = await self._states.delete_one({"_id": connection_id})
        return result.deleted_count == 1

    async def resume(self, connection_id: str, now: datetime, interval_s: float) -> bool:
        # The cursor and the ids applied at it stay: the first poll reads every event since.
        result = await self._states.update_one(
            {"_id": connection_id},
            {
                "$set": {
                    "status": SyncStatus.CATCHING_UP.value,
                    "stopped_reason": None,
                    "resync_import_id": None,
                    "interval_s": interval_s,
                    "next_due_at": now,
                    "updated_at": now,
                }
            },
        )
        return result.matched_count == 1

    async def lag_summary(self) -> tuple[int, datetime | None]:
        running = {"status": {"$ne": SyncStatus.STOPPED.value}}
        count = await self._states.count_documents(running)
        oldest: datetime | None = None
        async for document in self._states.find(running, {"synced_through": 1, "started_at": 1}):
            moment = document.get("synced_through") or document.get("started_at")
            if moment is not None and (oldest is None or moment < oldest):
                oldest = moment
        return count, oldest


class MongoSyncRecords:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._database = database

    async def put(self, record: CanonicalRecord, version: int, now: datetime) -> bool:
        document, older = _conditional(record, version, now)
        try:
            await self._database[record.collection].replace_one(older, document, upsert=True)
        except DuplicateKeyError:
            return False  # a newer version is stored
        return True

    async def put_many(self, records: Sequence[tuple[CanonicalRecord, int]], now: datetime) -> list[bool]:
        written = [True] * len(records)
        indexes: dict[str, list[int]] = {}
        for index, (record, _) in enumerate(records):
            indexes.setdefault(record.collection, []).append(index)
        for collection, positions in indexes.items():
            writes = [
                ReplaceOne(older, document, upsert=True)
                for document, older in (_conditional(*records[i], now) for i in positions)
            ]
            try:
                await self._database[collection].bulk_write(writes, ordered=False)
            except BulkWriteError as error:
                for failed in raise_unless_duplicates(error):  # a newer version is stored
                    written[positions[failed]] = False
        return written

    async def published(self, records: Sequence[tuple[CanonicalRecord, int]]) -> None:
        for collection, pairs in _by_collection(records).items():
            await self._database[collection].bulk_write(
                [
                    UpdateOne(
                        {"_id": record.key(), VERSION_FIELD: version}, {"$unset": {UNPUBLISHED_FIELD: ""}}
                    )
                    for record, version in pairs
                ],
                ordered=False,
            )

    async def unchanged(self, records: Sequence[tuple[CanonicalRecord, int]]) -> set[tuple[str, str]]:
        same: set[tuple[str, str]] = set()
        for collection, pairs in _by_collection(records).items():
            keys = [record.key() for record, _ in pairs]
            stored = {
                document["_id"]: document
                async for document in self._database[collection].find({"_id": {"$in": keys}})
            }
            moves: list[UpdateOne] = []
            found: set[tuple[str, str]] = set()
            for record, version in pairs:
                document = stored.get(record.key())
                if document is None or document.get(UNPUBLISHED_FIELD) is not None:
                    continue
                stored_version = document.get(VERSION_FIELD)
                if stored_version is not None and stored_version > version:
                    continue  # a newer read is stored: the write refuses this one anyway
                if type(record).model_validate(document) != record:
                    continue
                # Only the version moves on, and only from the version compared here: a write in
                # between makes it match nothing.
                moves.append(
                    UpdateOne(
                        {
                            "_id": record.key(),
                            VERSION_FIELD: stored_version,
                            UNPUBLISHED_FIELD: {"$exists": False},
                        },
                        {"$set": {VERSION_FIELD: version}},
                    )
                )
                found.add((collection, record.key()))
            if not moves:
                continue
            result = await self._database[collection].bulk_write(moves, ordered=False)
            if result.matched_count == len(moves):
                same |= found
            # else: one of them was written meanwhile and which is unknown: all are written again.
        return same

    async def has(self, collection: str, key: str) -> bool:
        return await self._database[collection].find_one({"_id": key}, {"_id": 1}) is not None

    async def count(self, collection: str, account_id: str, processor: str) -> int:
        return await self._database[collection].count_documents(
            {"account_id": account_id, "processor": processor}
        )

    async def created_times(self, collection: str, account_id: str, processor: str) -> list[int]:
        cursor = self._database[collection].find(
            {"account_id": account_id, "processor": processor}, {"_id": 0, "created_at": 1}
        )
        return [
            int(created.replace(tzinfo=created.tzinfo or UTC).timestamp())
            async for document in cursor
            if isinstance(created := document.get("created_at"), datetime)
        ]

    async def remove(self, collection: str, key: str) -> bool:
        result = await self._database[collection].delete_one({"_id": key})
        return result.deleted_count > 0

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]:
        cursor = self._database[CouponRecord.collection].find(
            {"account_id": account_id, "processor": processor}
        )
        return {document["object_id"]: CouponRecord.model_validate(document) async for document in cursor}


def _conditional(record: CanonicalRecord, version: int, now: datetime) -> tuple[Document, Document]:
    """The record's document as sync writes it, and the filter that writes it only over an older
    version (or a record never synced)."""
    document = record_document(record, SYNC_IMPORT_ID, now)
    document[VERSION_FIELD] = version
    document[UNPUBLISHED_FIELD] = True
    # Not newer than this read (or never synced). Said without a top-level ``$or``: the store then
    # finds the document by ``_id`` alone; with ``$or`` the local store scanned the whole collection
    # on every write (a 10,000-change burst spent most of its time there).
    return document, {"_id": document["_id"], VERSION_FIELD: {"$not": {"$gt": version}}}


def _by_collection(
    records: Sequence[tuple[CanonicalRecord, int]],
) -> dict[str, list[tuple[CanonicalRecord, int]]]:
    grouped: dict[str, list[tuple[CanonicalRecord, int]]] = {}
    for record, version in records:
        grouped.setdefault(record.collection, []).append((record, version))
    return grouped
