"""The ``import_pages`` ledger: each page's atomic step, concurrent pages' steps in one transaction,
concurrent pages' reads in one query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from importer.adapters.mongo_store import IMPORT_PAGES, Document, raise_unless_duplicates
from importer.domain.model import LedgerPage, PageStatus
from importer.domain.planning import PlannedPage
from importer.domain.source import PageQuery, Window


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


#: What a claim reads of a page: its query (``_planned``) and when it was last published.
_CLAIM_FIELDS: Final = dict.fromkeys(
    (
        "import_id",
        "parent_id",
        "resource",
        "created_gte",
        "created_lt",
        "cursor",
        "limit",
        "estimated_pages",
        "published_at",
    ),
    True,
)


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

    Reads of pages (``get``, the first step of every page request) asked for in the same turn of
    the event loop go to the store as one query by ``_id``, sent in the loop's next turn: page
    requests arrive in bursts (a batch of pages done together publishes its children together),
    and each read is still made after it was asked for, so it sees every write before it.
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
        self._reads: dict[str, list[asyncio.Future[LedgerPage | None]]] = {}

    async def add_roots(self, pages: Sequence[LedgerPage], now: datetime) -> None:
        if not pages:
            return
        try:
            await self._pages.insert_many([_page_document(page, now) for page in pages], ordered=False)
        except BulkWriteError as error:
            raise_unless_duplicates(error)

    async def get(self, page_id: str) -> LedgerPage | None:
        loop = asyncio.get_running_loop()
        read: asyncio.Future[LedgerPage | None] = loop.create_future()
        if not self._reads:
            loop.call_soon(self._read_batch)
        self._reads.setdefault(page_id, []).append(read)
        return await read

    def _read_batch(self) -> None:
        reads, self._reads = self._reads, {}
        task = asyncio.create_task(self._read(reads))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _read(self, reads: dict[str, list[asyncio.Future[LedgerPage | None]]]) -> None:
        try:
            found = {
                document["_id"]: _ledger_page(document)
                async for document in self._pages.find({"_id": {"$in": list(reads)}})
            }
        except Exception as error:
            for waiters in reads.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
            return
        for page_id, waiters in reads.items():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(found.get(page_id))

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
        # The children recorded with the page when it was done, read by `_id`: a point lookup each
        # on any store, where a query by `parent_id` would read the import's pending pages (MongoDB,
        # index `(import_id, status)`) or every page of the import (the development store, which
        # serves a filter only from an index holding all its fields). Only `_id` may come first in
        # this filter: the development store looks such a filter up by its first indexed field.
        parent = await self._pages.find_one({"_id": page_id}, projection={"children": True})
        children = [] if parent is None else list(parent.get("children") or [])
        if not children:
            return []
        return await self._claim(
            {
                "_id": {"$in": children},
                "status": PageStatus.PENDING.value,
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
        # Index `(import_id, status, published_at)` (`mongo_store.ensure_indexes`): the query reads
        # only the stale pending pages' entries, normally none, where `(import_id, status)` made
        # MongoDB fetch every pending page of the import each round and the development store read
        # every page of the import (~47 s at 450,000 pages, its storage lock held throughout).
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
        found = await self._pages.find(query, projection=_CLAIM_FIELDS, limit=limit).to_list()
        claimed: list[PlannedPage] = []
        for document in found:
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


class _NotAllPending(Exception):
    """A page of a batch was not pending: the batch's transaction is abandoned."""


def _resolve(done: asyncio.Future[bool], value: bool) -> None:
    if not done.done():
        done.set_result(value)
