"""Canonical records in their collections, written in group commits of concurrent pages.

Canonical records are keyed by ``_id`` = ``account_id:processor:object_id`` (the Kafka key of the
record), which makes them unique on ``(account_id, processor, object_id)`` without a second unique
index: the store writes several times faster with only its primary index, and nearly every write of
an import is a new record. So a batch is first *inserted* (unordered); only the records that
already exist (a re-sync, a redelivered page) are replaced, one upsert each.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

from bson import decode
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from contracts.records import CancellationRecord, CanonicalRecord, CouponRecord, SubscriptionRecord
from pymongo import DESCENDING, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from importer.adapters.mongo_store import Document, raise_unless_duplicates

#: The version sync stores with a record it wrote (``adapters.mongo_sync``): Unix ms of its read
#: (Stripe) or the processor's own version (Chargebee ``resource_version``, ms of the change).
SYNC_VERSION: Final = "sync_version"


def synced_no_later_than(version: int) -> Document:
    """A filter on a record: sync wrote it from a read no later than ``version``, or never. Said
    without a top-level ``$or``, so a store finds the document by its ``_id`` alone (with ``$or``
    the local store scanned the whole collection on every write)."""
    return {SYNC_VERSION: {"$not": {"$gt": version}}}


#: Imports whose start this process remembers, for their records already stored.
_REMEMBERED_IMPORTS: Final = 256

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The first window of a cancellation page below its upper end; each next one is twice as long.
CANCELLATION_WINDOW: Final = timedelta(days=7)
#: Below this, the windows of a cancellation page stop growing: the last one has no lower end.
_WINDOW_FLOOR: Final = datetime(1971, 1, 1, tzinfo=UTC)
_Record = TypeVar("_Record", bound=CanonicalRecord)


async def account_records(
    database: AsyncDatabase[Any], model: type[_Record], account_id: str, processor: str
) -> AsyncIterator[_Record]:
    """Every stored ``model`` record of one account at one processor."""
    cursor = database[model.collection].find({"account_id": account_id, "processor": processor})
    async for document in cursor:
        yield model.model_validate(document)


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
        cancellation_window: timedelta = CANCELLATION_WINDOW,
    ) -> None:
        self._database = database
        self._cancellation_window = cancellation_window
        #: When each recent import began (Unix ms), for the records of theirs already stored.
        self._began_ms: OrderedDict[str, int] = OrderedDict()
        self._group = _GroupCommit(
            self._insert_or_replace, max_documents=batch_documents, max_wait_s=batch_wait_s
        )

    async def write(
        self,
        import_id: str,
        records: Sequence[CanonicalRecord],
        now: datetime,
        *,
        began_at: datetime | None = None,
    ) -> None:
        if began_at is not None and import_id not in self._began_ms:
            self._began_ms[import_id] = int(began_at.timestamp() * 1000)
            while len(self._began_ms) > _REMEMBERED_IMPORTS:
                self._began_ms.popitem(last=False)
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
            duplicates = raise_unless_duplicates(error)
            await collection.bulk_write(
                [self._replacement(documents[index]) for index in duplicates], ordered=False
            )

    def _replacement(self, document: Document) -> ReplaceOne[Document]:
        """The write of an import's record over the stored one. A record sync wrote from a read made
        after the import began is left as it is: the import's copy may be older (a re-import runs
        while sync keeps the account fresh, and its page may have been read before sync's read), and
        sync applies every change after its own read; on the import's completion sync also starts
        again from before the import began. Without that, the stored record could go back to an
        older state. A record sync removed meanwhile is not written back (no upsert)."""
        began = self._began_ms.get(str(document.get("import_id")))
        if began is None:
            return ReplaceOne({"_id": document["_id"]}, document, upsert=True)
        return ReplaceOne({"_id": document["_id"], **synced_no_later_than(began)}, document)

    async def subscriptions_by_key(self, keys: Sequence[str]) -> list[SubscriptionRecord]:
        cursor = self._database[SubscriptionRecord.collection].find({"_id": {"$in": list(keys)}})
        return [SubscriptionRecord.model_validate(document) async for document in cursor]

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]:
        records = account_records(self._database, CouponRecord, account_id, processor)
        return {coupon.object_id: coupon async for coupon in records}

    async def remove_cancellations_not_in(
        self, account_id: str, processor: str, import_id: str, *, began_at: datetime | None = None
    ) -> int:
        stale: Document = {"account_id": account_id, "processor": processor, "import_id": {"$ne": import_id}}
        if began_at is not None:
            stale.update(synced_no_later_than(int(began_at.timestamp() * 1000)))
        result = await self._database[CancellationRecord.collection].delete_many(stale)
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
        """Newest first along ``(account_id, listed_at desc, _id desc)``, read in time windows.

        After a cursor, first the rest of its instant (``listed_at`` equal, ``_id`` below the
        cursor's), then strictly older ones. Older ones are read in windows of ``listed_at`` that
        start at ``CANCELLATION_WINDOW`` below the upper end and double, each read only as far as
        the page still needs: every query is an equality on the account and a range on
        ``listed_at``, so a store that sorts what it fetched (the development store) fetches about
        what the page spans, not the account; MongoDB walks the index in order either way. The
        windows touch end to end and the last one has no lower end, so the page is exactly the
        single sorted query's.
        """
        collection = self._database[CancellationRecord.collection]
        rows: list[tuple[datetime, str, CancellationRecord]] = []
        upper = until  # exclusive
        if after is not None:
            at, key = after
            if (since is None or at >= since) and (until is None or at < until):
                ties = collection.find(
                    {"account_id": account_id, "listed_at": at, "_id": {"$lt": key}},
                    sort=[("_id", DESCENDING)],
                    limit=limit,
                )
                rows.extend([_cancellation_row(document) async for document in ties])
            upper = at if until is None else min(at, until)
        top = upper if upper is not None else datetime.now(UTC)
        span = self._cancellation_window
        while len(rows) < limit:
            lower: datetime | None = top - span
            if lower is not None and (lower <= _WINDOW_FLOOR or (since is not None and lower <= since)):
                lower = since
            window: Document = {}
            if lower is not None:
                window["$gte"] = lower
            if upper is not None:
                window["$lt"] = upper
            query: Document = {"account_id": account_id}
            if window:
                query["listed_at"] = window
            cursor = collection.find(
                query, sort=[("listed_at", DESCENDING), ("_id", DESCENDING)], limit=limit - len(rows)
            )
            rows.extend([_cancellation_row(document) async for document in cursor])
            if lower is None or lower == since:
                break
            upper, span = lower, span * 2
            top = lower
        return rows

    def subscriptions(self, account_id: str, processor: str) -> AsyncIterator[SubscriptionRecord]:
        return account_records(self._database, SubscriptionRecord, account_id, processor)

    def subscription_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[SubscriptionRecord]]:
        return record_batches(
            self._database, SubscriptionRecord, account_id, processor, fields=fields, batch_size=batch_size
        )


async def record_batches(
    database: AsyncDatabase[Document],
    model: type[_Record],
    account_id: str,
    processor: str,
    *,
    fields: Sequence[str],
    batch_size: int,
) -> AsyncIterator[list[_Record]]:
    """Read along the primary index: every key of the account at the processor starts with
    ``account_id:processor:`` (the fields are matched too, so an id holding ``:`` matches only its
    own records). The event loop only splits the store's answers into raw documents; each batch is
    decoded and validated in a worker thread."""
    prefix = f"{account_id}:{processor}:"
    options = database.codec_options
    raw = cast(
        "AsyncCollection[RawBSONDocument]",
        database.get_collection(
            model.collection, codec_options=options.with_options(document_class=RawBSONDocument)
        ),
    )
    cursor = raw.find(
        {
            "_id": {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(":") + 1)},
            "account_id": account_id,
            "processor": processor,
        },
        projection=dict.fromkeys(fields, True),
        batch_size=batch_size,
    )
    batch: list[RawBSONDocument] = []
    async for document in cursor:
        batch.append(document)
        if len(batch) >= batch_size:
            yield await asyncio.to_thread(_records_of, model, batch, options)
            batch = []
    if batch:
        yield await asyncio.to_thread(_records_of, model, batch, options)


def _cancellation_row(document: Document) -> tuple[datetime, str, CancellationRecord]:
    return document["listed_at"], document["_id"], CancellationRecord.model_validate(document)


def _records_of(
    model: type[_Record], documents: list[RawBSONDocument], options: CodecOptions[Document]
) -> list[_Record]:
    return [model.model_validate(decode(document.raw, options)) for document in documents]
