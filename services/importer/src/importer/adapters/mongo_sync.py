"""Sync's storage: the ``sync_state`` collection and conditional writes of canonical records.

``sync_state`` (``contracts.sync``: the connector reads it for ``GET …/connection``) has one
document per connection; ``next_due_at`` says when its next poll is due. Every importer process
scans for due documents and claims each with one conditional update that moves ``next_due_at``
on, so however many processes run (and restart), each poll is asked for once.

A burst of webhooks asks the same two things of one connection's document for every event: which
syncs its processor account runs (:meth:`MongoSyncStateStore.running_for`) and, once applied, that
the event is applied (:meth:`MongoSyncStateStore.record_applied`). Concurrent calls share one
command: a read answers those that were waiting when it was sent (one read in flight per account,
those arriving meanwhile wait for the next one, so no answer predates its caller), and one update
records every event id waiting when it was sent (each call returns once its own id is stored).

Records written by sync carry ``sync_version``; a write is conditional on the stored version being
older (``domain.sync.supersedes``), and an upsert that loses that race finds the document and
fails on its ``_id``, which is how an older read is refused. A record a newer read finds unchanged
only has its version moved on (:meth:`MongoSyncRecords.move_versions`), conditionally on the
version it was known at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from contracts.events import Processor
from contracts.records import CanonicalRecord, CouponRecord, SubscriptionRecord
from contracts.sync import SYNC_STATE_COLLECTION, SyncStatus
from pymongo import ASCENDING, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from importer.adapters.mongo_churn import churn_inputs_changed
from importer.adapters.mongo_records import SYNC_VERSION, record_document, synced_no_later_than
from importer.adapters.mongo_store import raise_unless_duplicates
from importer.domain.sync import MAX_APPLIED_IDS, EventSweep, SyncState

Document = dict[str, Any]
SYNC_IMPORT_ID: Final = "sync"
VERSION_FIELD: Final = SYNC_VERSION
#: The collections churn is computed from: a write or removal there makes the account's churn
#: summary stale (``mongo_churn``), once the record is written.
CHURN_INPUTS: Final = frozenset({SubscriptionRecord.collection, CouponRecord.collection})


_T = TypeVar("_T")


class _FreshReads:
    """Concurrent reads of one key share one query sent after each of them began."""

    def __init__(self) -> None:
        self._next: dict[Hashable, asyncio.Future[Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def read(self, key: Hashable, query: Callable[[], Awaitable[_T]]) -> _T:
        answer = self._next.get(key)
        if answer is None:
            answer = self._next[key] = asyncio.get_running_loop().create_future()
        async with self._locks.setdefault(key, asyncio.Lock()):  # one query in flight per key
            if not answer.done():
                if self._next.get(key) is answer:
                    del self._next[key]  # callers from now on wait for the next query
                try:
                    answer.set_result(await query())
                except Exception as error:  # every caller sharing it gets it
                    answer.set_exception(error)
        result: _T = await answer
        return result


@dataclass(slots=True)
class _Applied:
    done: asyncio.Future[None]
    ids: list[str] = field(default_factory=list)
    newest: datetime | None = None


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
        sweep=_sweep(document.get("sweep")),
    )


def _sweep(document: Mapping[str, Any] | None) -> EventSweep | None:
    if not document:
        return None
    return EventSweep(
        after_id=str(document["after_id"]),
        top_s=int(document["top_s"]),
        top_ids=tuple(document.get("top_ids", ())),
        began_at=document["began_at"],
    )


def _sweep_document(sweep: EventSweep | None) -> Document | None:
    if sweep is None:
        return None
    return {
        "after_id": sweep.after_id,
        "top_s": sweep.top_s,
        "top_ids": list(sweep.top_ids)[-MAX_APPLIED_IDS:],
        "began_at": sweep.began_at,
    }


class MongoSyncStateStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._states = database[SYNC_STATE_COLLECTION]
        self._running = _FreshReads()
        self._applied: dict[str, _Applied] = {}
        self._recording: dict[str, asyncio.Lock] = {}

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
                    "sweep": None,
                },
            },
            upsert=True,
        )

    async def get(self, connection_id: str) -> SyncState | None:
        document = await self._states.find_one({"_id": connection_id})
        return None if document is None else _state(document)

    async def running_for(self, processor: str, processor_account_id: str) -> list[SyncState]:
        sync_key = f"{processor}:{processor_account_id}"

        async def query() -> list[SyncState]:
            cursor = self._states.find({"sync_key": sync_key, "status": {"$ne": SyncStatus.STOPPED.value}})
            return [_state(document) async for document in cursor]

        return list(await self._running.read(sync_key, query))

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
        synced_through: datetime | None,
        sweep: EventSweep | None,
        now: datetime,
    ) -> None:
        changes: Document = {
            "cursor_s": cursor_s,
            "applied_ids": list(applied_ids)[-MAX_APPLIED_IDS:],
            "sweep": _sweep_document(sweep),
            "polled_at": now,
            "updated_at": now,
        }
        if synced_through is not None:  # else the list was not read to its end: nothing moves
            changes["synced_through"] = synced_through
            changes["status"] = SyncStatus.LIVE.value
        update: Document = {"$set": changes}
        if last_event_at is not None:
            update["$max"] = {"last_event_at": last_event_at}
        await self._states.update_one(
            {"_id": connection_id, "status": {"$ne": SyncStatus.STOPPED.value}}, update
        )

    async def record_applied(self, connection_id: str, event_id: str, created: datetime) -> None:
        batch = self._applied.get(connection_id)
        if batch is None:
            batch = self._applied[connection_id] = _Applied(asyncio.get_running_loop().create_future())
        batch.ids.append(event_id)
        batch.newest = created if batch.newest is None else max(batch.newest, created)
        async with self._recording.setdefault(connection_id, asyncio.Lock()):  # one update at a time
            if not batch.done.done():
                # Not written yet: write it, with the ids of every call that joined it meanwhile
                # (calls from now on start the next batch).
                if self._applied.get(connection_id) is batch:
                    del self._applied[connection_id]
                try:
                    await self._states.update_one(
                        {"_id": connection_id},
                        {
                            "$push": {"applied_ids": {"$each": batch.ids, "$slice": -MAX_APPLIED_IDS}},
                            "$max": {"last_event_at": batch.newest},
                        },
                    )
                    batch.done.set_result(None)
                except Exception as error:  # every call of the batch gets it
                    batch.done.set_exception(error)
        await batch.done

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
        if record.collection in CHURN_INPUTS:
            await _churn_inputs_changed(self._database, [record], now)
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
        changed = [
            record
            for (record, _), stored in zip(records, written, strict=True)
            if stored and record.collection in CHURN_INPUTS
        ]
        await _churn_inputs_changed(self._database, changed, now)
        return written

    async def move_versions(self, moves: Sequence[tuple[CanonicalRecord, int, int]]) -> bool:
        moved = True
        for collection, group in _by_collection(
            [(record, i) for i, (record, _, _) in enumerate(moves)]
        ).items():
            updates = [
                UpdateOne(
                    {"_id": record.key(), VERSION_FIELD: moves[i][1]}, {"$set": {VERSION_FIELD: moves[i][2]}}
                )
                for record, i in group
            ]
            result = await self._database[collection].bulk_write(updates, ordered=False)
            moved = moved and result.matched_count == len(updates)
        return moved

    async def has(self, collection: str, key: str) -> bool:
        return await self._database[collection].find_one({"_id": key}, {"_id": 1}) is not None

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
        if collection not in CHURN_INPUTS:
            result = await self._database[collection].delete_one({"_id": key})
            return result.deleted_count > 0
        removed = await self._database[collection].find_one_and_delete(
            {"_id": key}, projection={"account_id": 1, "processor": 1, "object_id": 1}
        )
        if removed is None:
            return False
        subscription = collection == SubscriptionRecord.collection
        await churn_inputs_changed(
            self._database,
            str(removed["account_id"]),
            str(removed["processor"]),
            datetime.now(UTC),
            subscription_ids=[str(removed["object_id"])] if subscription else [],
            coupons=not subscription,
        )
        return True

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]:
        cursor = self._database[CouponRecord.collection].find(
            {"account_id": account_id, "processor": processor}
        )
        return {document["object_id"]: CouponRecord.model_validate(document) async for document in cursor}


async def _churn_inputs_changed(
    database: AsyncDatabase[Document], records: Sequence[CanonicalRecord], now: datetime
) -> None:
    """One move of the churn inputs' version per account for these written records."""
    by_account: dict[tuple[str, str], list[CanonicalRecord]] = {}
    for record in records:
        by_account.setdefault((record.account_id, record.processor.value), []).append(record)
    for (account_id, processor), written in sorted(by_account.items()):
        await churn_inputs_changed(
            database,
            account_id,
            processor,
            now,
            subscription_ids=[r.object_id for r in written if isinstance(r, SubscriptionRecord)],
            coupons=any(isinstance(r, CouponRecord) for r in written),
        )


def _conditional(record: CanonicalRecord, version: int, now: datetime) -> tuple[Document, Document]:
    """The record's document as sync writes it, and the filter that writes it only over an older
    version (or a record never synced)."""
    document = record_document(record, SYNC_IMPORT_ID, now)
    document[VERSION_FIELD] = version
    # (Without a top-level ``$or``: with one, a 10,000-change burst spent most of its time in the
    # local store scanning the whole collection on every write.)
    return document, {"_id": document["_id"], **synced_no_later_than(version)}


def _by_collection(
    records: Sequence[tuple[CanonicalRecord, int]],
) -> dict[str, list[tuple[CanonicalRecord, int]]]:
    grouped: dict[str, list[tuple[CanonicalRecord, int]]] = {}
    for record, version in records:
        grouped.setdefault(record.collection, []).append((record, version))
    return grouped
