"""MongoDB behind the importer: the ``imports`` jobs, the ``import_pages`` ledger, canonical records.

Canonical records are keyed by ``_id`` = ``account_id:processor:object_id`` (the Kafka key of the
record), which makes them unique on ``(account_id, processor, object_id)`` without a second unique
index: the store writes several times faster with only its primary index, and nearly every write of
an import is a new record. So a batch is first *inserted* (unordered); only the records that
already exist (a re-sync, a redelivered page) are replaced, one upsert each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from contracts.events import Mode, Processor
from contracts.records import (
    CancellationRecord,
    CanonicalRecord,
    CouponRecord,
    SubscriptionRecord,
)
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from importer.domain.model import ImportJob, ImportStatus, LedgerPage, PageStatus
from importer.domain.planning import PlannedPage
from importer.domain.source import PageQuery, Window

Document = dict[str, Any]

IMPORTS: Final = "imports"
IMPORT_PAGES: Final = "import_pages"
DUPLICATE_KEY: Final = 11000
_UNFINISHED: Final = [ImportStatus.QUEUED.value, ImportStatus.RUNNING.value, ImportStatus.FINALIZING.value]
_FLAGS: Final = frozenset({"pages_published", "started_published", "outcome_published"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Set to the connection id while an import runs or finalizes, removed when it ends: a unique index on
#: it lets one import of a connection run at a time, whoever asks and however.
CONNECTION_SLOT: Final = "connection_slot"
ONE_RUNNING_IMPORT_INDEX: Final = "one_running_import_per_connection"


def connect(url: str, *, app_name: str = "importer") -> AsyncMongoClient[Document]:
    """A client whose datetimes come back aware (UTC), as the records require.

    Driver-retried writes are off: every write of the importer is idempotent or conditional and the
    pipeline retries a failed page itself, while a retryable write costs the local store a fixed
    ~15 ms (about twenty times a plain one) and halves its insert rate.
    """
    return AsyncMongoClient(url, tz_aware=True, appname=app_name, retryWrites=False)


async def ensure_indexes(database: AsyncDatabase[Document]) -> None:
    """The indexes the importer's queries need; the record collections keep only ``_id`` (see above)."""
    imports = database[IMPORTS]
    await imports.create_index([("account_id", ASCENDING), ("created_at", DESCENDING)])
    await imports.create_index([("connection_id", ASCENDING), ("status", ASCENDING)])
    await imports.create_index([("status", ASCENDING)])
    await imports.create_index(
        [(CONNECTION_SLOT, ASCENDING)],
        name=ONE_RUNNING_IMPORT_INDEX,
        unique=True,
        partialFilterExpression={CONNECTION_SLOT: {"$exists": True}},
    )
    pages = database[IMPORT_PAGES]
    await pages.create_index([("import_id", ASCENDING), ("status", ASCENDING)])
    await pages.create_index([("import_id", ASCENDING), ("status", ASCENDING), ("resource", ASCENDING)])
    await database[CancellationRecord.collection].create_index(
        [("account_id", ASCENDING), ("listed_at", DESCENDING), ("_id", DESCENDING)]
    )
    await database[CouponRecord.collection].create_index(
        [("account_id", ASCENDING), ("processor", ASCENDING)]
    )


# --- imports ----------------------------------------------------------------------------------------


def _job_document(job: ImportJob) -> Document:
    return {
        "_id": job.import_id,
        "account_id": job.account_id,
        "connection_id": job.connection_id,
        "processor": job.processor.value,
        "mode": None if job.mode is None else job.mode.value,
        "contact_email": job.contact_email,
        "status": job.status.value,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "resources": dict(job.resources),
        "past_cancellations": job.past_cancellations,
        "error": None,
        "pages_published": job.pages_published,
        "started_published": job.started_published,
        "outcome_published": job.outcome_published,
        "lease_until": None,
        "progress_at": None,
    }


def _job(document: Mapping[str, Any]) -> ImportJob:
    error = document.get("error") or {}
    return ImportJob(
        import_id=document["_id"],
        account_id=document["account_id"],
        connection_id=document["connection_id"],
        processor=Processor(document["processor"]),
        contact_email=document["contact_email"],
        status=ImportStatus(document["status"]),
        created_at=document["created_at"],
        mode=None if document.get("mode") is None else Mode(document["mode"]),
        started_at=document.get("started_at"),
        finished_at=document.get("finished_at"),
        resources={str(key): int(value) for key, value in (document.get("resources") or {}).items()},
        past_cancellations=document.get("past_cancellations"),
        error_code=error.get("code"),
        error_message=error.get("message"),
        pages_published=bool(document.get("pages_published")),
        started_published=bool(document.get("started_published")),
        outcome_published=bool(document.get("outcome_published")),
    )


class MongoImportRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._imports: AsyncCollection[Document] = database[IMPORTS]

    async def create(self, job: ImportJob) -> bool:
        try:
            await self._imports.insert_one(_job_document(job))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, import_id: str) -> ImportJob | None:
        document = await self._imports.find_one({"_id": import_id})
        return None if document is None else _job(document)

    async def latest_for_account(
        self, account_id: str, status: ImportStatus | None = None
    ) -> ImportJob | None:
        query: Document = {"account_id": account_id}
        if status is not None:
            query["status"] = status.value
        document = await self._imports.find_one(query, sort=[("created_at", DESCENDING), ("_id", DESCENDING)])
        return None if document is None else _job(document)

    async def mark_running(
        self,
        job: ImportJob,
        now: datetime,
        resources: Mapping[str, int] | None = None,
    ) -> ImportJob | None:
        try:
            return await self._transition(
                {"_id": job.import_id, "status": ImportStatus.QUEUED.value},
                {
                    "status": ImportStatus.RUNNING.value,
                    "started_at": now,
                    "resources": dict(resources or {}),
                    CONNECTION_SLOT: job.connection_id,
                },
            )
        except DuplicateKeyError:
            return None  # another import of the connection holds its slot: this one waits, queued

    async def set_flag(self, import_id: str, flag: str) -> None:
        if flag not in _FLAGS:
            raise ValueError(f"unknown flag {flag!r}")
        await self._imports.update_one({"_id": import_id}, {"$set": {flag: True}})

    async def fail(self, import_id: str, code: str, message: str, now: datetime) -> ImportJob | None:
        return await self._transition(
            {"_id": import_id, "status": {"$in": _UNFINISHED}},
            {
                "status": ImportStatus.FAILED.value,
                "finished_at": now,
                "error": {"code": code, "message": message},
                "outcome_published": False,
            },
            unset=(CONNECTION_SLOT,),
        )

    async def claim_finalization(self, import_id: str, now: datetime, lease_s: float) -> ImportJob | None:
        return await self._transition(
            {
                "_id": import_id,
                "$or": [
                    {"status": ImportStatus.RUNNING.value},
                    {"status": ImportStatus.FINALIZING.value, "lease_until": {"$lt": now}},
                ],
            },
            {"status": ImportStatus.FINALIZING.value, "lease_until": now + timedelta(seconds=lease_s)},
        )

    async def complete(
        self, import_id: str, resources: Mapping[str, int], past_cancellations: int, now: datetime
    ) -> ImportJob | None:
        return await self._transition(
            {"_id": import_id, "status": ImportStatus.FINALIZING.value},
            {
                "status": ImportStatus.COMPLETED.value,
                "finished_at": now,
                "resources": dict(resources),
                "past_cancellations": past_cancellations,
                "lease_until": None,
                "outcome_published": False,
            },
            unset=(CONNECTION_SLOT,),
        )

    async def add_progress(self, import_id: str, counts: Mapping[str, int]) -> None:
        # Only while running: once finalizing, the counts are the ledger's exact ones.
        await self._imports.update_one(
            {"_id": import_id, "status": ImportStatus.RUNNING.value},
            {"$inc": {f"resources.{key}": value for key, value in counts.items()}},
        )

    async def claim_progress(self, import_id: str, now: datetime, interval_s: float) -> bool:
        result = await self._imports.update_one(
            {
                "_id": import_id,
                "status": ImportStatus.RUNNING.value,
                "$or": [
                    {"progress_at": None},
                    {"progress_at": {"$lte": now - timedelta(seconds=interval_s)}},
                ],
            },
            {"$set": {"progress_at": now}},
        )
        return result.modified_count == 1

    async def unfinished_for_connection(self, connection_id: str) -> list[ImportJob]:
        cursor = self._imports.find({"connection_id": connection_id, "status": {"$in": _UNFINISHED}})
        return [_job(document) async for document in cursor]

    async def needing_attention(
        self, now: datetime, *, queued_before: datetime | None = None
    ) -> list[ImportJob]:
        waiting = (
            []
            if queued_before is None
            else [{"status": ImportStatus.QUEUED.value, "created_at": {"$lt": queued_before}}]
        )
        cursor = self._imports.find(
            {
                "$or": [
                    *waiting,
                    {"status": ImportStatus.RUNNING.value},
                    {"status": ImportStatus.FINALIZING.value, "lease_until": {"$lt": now}},
                    {
                        "status": {"$in": [ImportStatus.COMPLETED.value, ImportStatus.FAILED.value]},
                        "outcome_published": False,
                    },
                ]
            }
        )
        return [_job(document) async for document in cursor]

    async def _transition(
        self, query: Document, changes: Document, *, unset: Sequence[str] = ()
    ) -> ImportJob | None:
        from pymongo import ReturnDocument

        update: Document = {"$set": changes}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        document = await self._imports.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return None if document is None else _job(document)


# --- the page ledger ----------------------------------------------------------------------------------


def _page_document(entry: LedgerPage, now: datetime) -> Document:
    page = entry.page
    return {
        "_id": page.page_id,
        "import_id": page.import_id,
        "parent_id": page.parent_id,
        "resource": page.query.resource,
        "count_key": entry.count_key,
        "created_gte": page.query.window.created_gte,
        "created_lt": page.query.window.created_lt,
        "cursor": page.query.cursor,
        "limit": page.query.limit,
        "estimated_pages": page.estimated_pages,
        "status": entry.status.value,
        "objects": entry.objects,
        "deferred_cancellations": [],
        "cancellations": 0,
        "planned_at": now,
        "published_at": now,
        "done_at": None,
    }


def _planned(document: Mapping[str, Any]) -> PlannedPage:
    query = PageQuery(
        resource=document["resource"],
        window=Window(document.get("created_gte"), document.get("created_lt")),
        cursor=document.get("cursor"),
        limit=int(document["limit"]),
    )
    return PlannedPage(
        document["_id"],
        document["import_id"],
        query,
        document.get("parent_id"),
        document.get("estimated_pages"),
    )


def _ledger_page(document: Mapping[str, Any]) -> LedgerPage:
    return LedgerPage(
        page=_planned(document),
        status=PageStatus(document["status"]),
        count_key=document["count_key"],
        objects=int(document.get("objects") or 0),
    )


@dataclass(slots=True)
class _Completion:
    """One page's atomic step: its ``pending`` → ``done`` update and its children to insert."""

    page_id: str
    update: Document
    children: list[Document]
    done: asyncio.Future[bool]


class MongoPageLedger:
    """The page ledger; completions of concurrent pages share one transaction (group commit).

    The store runs transactions one at a time, a few hundred a second: one per page would queue
    pages behind each other when many finish at once. A batch is one transaction: every page's
    conditional update, then every child inserted. If any page of the batch was not pending (a
    duplicate delivery), the transaction is dropped and each page of the batch is completed in a
    transaction of its own, so each still gets its own answer.
    """

    BATCH_PAGES: Final = 64
    BATCH_WAIT_S: Final = 0.01

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: AsyncDatabase[Document],
        *,
        batch_pages: int = BATCH_PAGES,
        batch_wait_s: float = BATCH_WAIT_S,
    ) -> None:
        self._client = client
        self._pages: AsyncCollection[Document] = database[IMPORT_PAGES]
        self._batch_pages = batch_pages
        self._batch_wait_s = batch_wait_s
        self._batch: list[_Completion] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def add_roots(self, pages: Sequence[LedgerPage], now: datetime) -> None:
        if not pages:
            return
        try:
            await self._pages.insert_many([_page_document(page, now) for page in pages], ordered=False)
        except BulkWriteError as error:
            _raise_unless_duplicates(error)

    async def get(self, page_id: str) -> LedgerPage | None:
        document = await self._pages.find_one({"_id": page_id})
        return None if document is None else _ledger_page(document)

    async def complete(
        self,
        page_id: str,
        objects: int,
        children: Sequence[LedgerPage],
        now: datetime,
        *,
        deferred_cancellations: Sequence[str] = (),
        cancellations: int = 0,
    ) -> bool:
        child_documents = [_page_document(child, now) for child in children]
        update = {
            "status": PageStatus.DONE.value,
            "objects": objects,
            "deferred_cancellations": list(deferred_cancellations),
            "cancellations": cancellations,
            "children": [document["_id"] for document in child_documents],
            "done_at": now,
        }
        loop = asyncio.get_running_loop()
        completion = _Completion(page_id, update, child_documents, loop.create_future())
        self._batch.append(completion)
        if len(self._batch) >= self._batch_pages:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._batch_wait_s, self._flush)
        return await completion.done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.create_task(self._commit(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _commit(self, batch: list[_Completion]) -> None:
        try:
            if len(batch) > 1 and len({item.page_id for item in batch}) == len(batch):
                try:
                    await self._transaction(batch)
                except _NotAllPending:
                    pass
                else:
                    for item in batch:
                        _resolve(item.done, True)
                    return
            for item in batch:
                try:
                    done = await self._transaction([item])
                except _NotAllPending:
                    done = False
                _resolve(item.done, done)
        except Exception as error:
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(error)

    async def _transaction(self, batch: list[_Completion]) -> bool:
        """Every page of ``batch`` done and its children inserted, in one transaction, or nothing."""

        async def mark_done(session: AsyncClientSession) -> bool:
            result = await self._pages.bulk_write(
                [
                    UpdateOne(
                        {"_id": item.page_id, "status": PageStatus.PENDING.value}, {"$set": item.update}
                    )
                    for item in batch
                ],
                ordered=False,
                session=session,
            )
            if result.matched_count != len(batch):
                raise _NotAllPending
            children = [child for item in batch for child in item.children]
            if children:
                await self._pages.insert_many(children, session=session)
            return True

        async with self._client.start_session() as session:
            done: bool = await session.with_transaction(mark_done)
            return done

    async def claim_unpublished_children(
        self, import_id: str, page_id: str, published_before: datetime, now: datetime
    ) -> list[PlannedPage]:
        return await self._claim(
            {
                "import_id": import_id,
                "status": PageStatus.PENDING.value,
                "parent_id": page_id,
                "published_at": {"$lt": published_before},
            },
            now,
            limit=0,
        )

    async def pending_roots(self, import_id: str) -> list[PlannedPage]:
        cursor = self._pages.find(
            {"import_id": import_id, "status": PageStatus.PENDING.value, "parent_id": None}
        )
        return [_planned(document) async for document in cursor]

    async def pending_count(self, import_id: str, resource: str | None = None) -> int:
        query: Document = {"import_id": import_id, "status": PageStatus.PENDING.value}
        if resource is not None:
            query["resource"] = resource
        return await self._pages.count_documents(query)

    async def pending_estimates(self, import_id: str) -> list[tuple[str, float | None]]:
        cursor = self._pages.find(
            {"import_id": import_id, "status": PageStatus.PENDING.value},
            projection={"resource": True, "estimated_pages": True},
        )
        return [(document["resource"], document.get("estimated_pages")) async for document in cursor]

    async def objects_by_count_key(self, import_id: str) -> dict[str, int]:
        cursor = await self._pages.aggregate(
            [
                {"$match": {"import_id": import_id, "status": PageStatus.DONE.value}},
                {"$group": {"_id": "$count_key", "objects": {"$sum": "$objects"}}},
            ]
        )
        return {str(row["_id"]): int(row["objects"]) async for row in cursor}

    async def page_cancellations(self, import_id: str) -> int:
        cursor = await self._pages.aggregate(
            [
                {"$match": {"import_id": import_id, "status": PageStatus.DONE.value}},
                {"$group": {"_id": None, "cancellations": {"$sum": "$cancellations"}}},
            ]
        )
        return sum([int(row["cancellations"]) async for row in cursor])

    async def deferred_cancellations(self, import_id: str, batch_size: int) -> AsyncIterator[list[str]]:
        batch: list[str] = []
        cursor = self._pages.find(
            {
                "import_id": import_id,
                "status": PageStatus.DONE.value,
                "deferred_cancellations.0": {"$exists": True},
            },
            projection={"deferred_cancellations": True},
        )
        async for document in cursor:
            batch.extend(document["deferred_cancellations"])
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    async def claim_stale(
        self, import_id: str, published_before: datetime, now: datetime, limit: int
    ) -> list[PlannedPage]:
        return await self._claim(
            {
                "import_id": import_id,
                "status": PageStatus.PENDING.value,
                "published_at": {"$lt": published_before},
            },
            now,
            limit=limit,
        )

    async def _claim(self, query: Document, now: datetime, *, limit: int) -> list[PlannedPage]:
        claimed: list[PlannedPage] = []
        async for document in self._pages.find(query, limit=limit):
            # Conditional, so that of two processes claiming at once only one publishes the page again.
            result = await self._pages.update_one(
                {
                    "_id": document["_id"],
                    "status": PageStatus.PENDING.value,
                    "published_at": document["published_at"],
                },
                {"$set": {"published_at": now}},
            )
            if result.modified_count == 1:
                claimed.append(_planned(document))
        return claimed


# --- canonical records --------------------------------------------------------------------------------


def record_document(record: CanonicalRecord, import_id: str, now: datetime) -> Document:
    document: Document = {
        "_id": record.key(),
        **record.model_dump(),
        "import_id": import_id,
        "imported_at": now,
    }
    if isinstance(record, CancellationRecord):
        # The position in the newest-first list; a cancellation has at least one of these times.
        document["listed_at"] = record.canceled_at or record.ended_at or record.created_at or _EPOCH
    return document


class _GroupCommit:
    """Coalesces the record writes of concurrent pages into few ``insert_many`` commands.

    Each page still returns only once its own records are stored, so the protocol is unchanged; the
    store pays its fixed cost per command for many pages at once. A batch leaves when it holds
    ``max_documents`` or when its first page has waited ``max_wait_s``.
    """

    def __init__(
        self,
        write: Callable[[str, list[Document]], Awaitable[None]],
        *,
        max_documents: int,
        max_wait_s: float,
    ) -> None:
        self._write = write
        self._max_documents = max_documents
        self._max_wait_s = max_wait_s
        self._batch: dict[str, list[Document]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def write(self, documents_by_collection: Mapping[str, list[Document]]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        for collection, documents in documents_by_collection.items():
            self._batch.setdefault(collection, []).extend(documents)
            self._size += len(documents)
        self._waiters.append(done)
        if self._size >= self._max_documents:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait_s, self._flush)
        await done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, waiters = self._batch, self._waiters
        self._batch, self._waiters, self._size = {}, [], 0
        if waiters:
            task = asyncio.create_task(self._store(batch, waiters))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _store(self, batch: dict[str, list[Document]], waiters: list[asyncio.Future[None]]) -> None:
        try:
            for collection, documents in batch.items():
                await self._write(collection, documents)
        except Exception as error:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


class MongoRecordStore:
    #: Group commit: a batch of records leaves at this size, or when its first page waited this long.
    BATCH_DOCUMENTS: Final = 2000
    BATCH_WAIT_S: Final = 0.05

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        batch_documents: int = BATCH_DOCUMENTS,
        batch_wait_s: float = BATCH_WAIT_S,
    ) -> None:
        self._database = database
        self._group = _GroupCommit(
            self._insert_or_replace, max_documents=batch_documents, max_wait_s=batch_wait_s
        )

    async def write(self, import_id: str, records: Sequence[CanonicalRecord], now: datetime) -> None:
        by_collection: dict[str, list[Document]] = {}
        for record in records:
            by_collection.setdefault(record.collection, []).append(record_document(record, import_id, now))
        if by_collection:
            await self._group.write(by_collection)

    async def _insert_or_replace(self, collection_name: str, documents: list[Document]) -> None:
        collection = self._database[collection_name]
        try:
            await collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            duplicates = _raise_unless_duplicates(error)
            await collection.bulk_write(
                [
                    ReplaceOne({"_id": documents[index]["_id"]}, documents[index], upsert=True)
                    for index in duplicates
                ],
                ordered=False,
            )

    async def subscriptions_by_key(self, keys: Sequence[str]) -> list[SubscriptionRecord]:
        cursor = self._database[SubscriptionRecord.collection].find({"_id": {"$in": list(keys)}})
        return [SubscriptionRecord.model_validate(document) async for document in cursor]

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]:
        cursor = self._database[CouponRecord.collection].find(
            {"account_id": account_id, "processor": processor}
        )
        return {document["object_id"]: CouponRecord.model_validate(document) async for document in cursor}

    async def remove_cancellations_not_in(self, account_id: str, processor: str, import_id: str) -> int:
        result = await self._database[CancellationRecord.collection].delete_many(
            {"account_id": account_id, "processor": processor, "import_id": {"$ne": import_id}}
        )
        return result.deleted_count

    # --- reads of the HTTP API ---

    async def cancellations_page(
        self,
        account_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[tuple[datetime, str, CancellationRecord]]:
        query: Document = {"account_id": account_id}
        window: Document = {}
        if since is not None:
            window["$gte"] = since
        if until is not None:
            window["$lt"] = until
        if window:
            query["listed_at"] = window
        if after is not None:
            at, key = after
            query["$or"] = [{"listed_at": {"$lt": at}}, {"listed_at": at, "_id": {"$lt": key}}]
        cursor = self._database[CancellationRecord.collection].find(
            query, sort=[("listed_at", DESCENDING), ("_id", DESCENDING)], limit=limit
        )
        return [
            (document["listed_at"], document["_id"], CancellationRecord.model_validate(document))
            async for document in cursor
        ]

    async def subscriptions(self, account_id: str, processor: str) -> AsyncIterator[SubscriptionRecord]:
        cursor = self._database[SubscriptionRecord.collection].find(
            {"account_id": account_id, "processor": processor}
        )
        async for document in cursor:
            yield SubscriptionRecord.model_validate(document)


class _NotAllPending(Exception):
    """A page of a batch was not pending: the batch's transaction is abandoned."""


def _resolve(done: asyncio.Future[bool], value: bool) -> None:
    if not done.done():
        done.set_result(value)


def _raise_unless_duplicates(error: BulkWriteError) -> list[int]:
    """The indexes of the documents that failed as duplicates; any other failure is raised."""
    write_errors = error.details.get("writeErrors", [])
    if any(item.get("code") != DUPLICATE_KEY for item in write_errors) or error.details.get(
        "writeConcernErrors"
    ):
        raise error
    return [int(item["index"]) for item in write_errors]
