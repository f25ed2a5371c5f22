"""The page ledger's recovery claims on the real store: which pages each claims, that a claimed page is
re-stamped, and that of two processes claiming at once only one gets each page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from importer.adapters.mongo_page_ledger import MongoPageLedger
from importer.adapters.mongo_store import ensure_indexes
from importer.domain.model import LedgerPage, PageStatus
from importer.domain.planning import PlannedPage
from importer.domain.source import PageQuery, Window
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

T0 = datetime(2026, 11, 1, tzinfo=UTC)
IMPORT = "imp_a"
OTHER_IMPORT = "imp_b"


def page(page_id: str, import_id: str = IMPORT, parent_id: str | None = None) -> LedgerPage:
    query = PageQuery("invoices", Window(1_700_000_000, 1_800_000_000), cursor=f"cur_{page_id}", limit=100)
    return LedgerPage(
        PlannedPage(f"{import_id}:{page_id}", import_id, query, parent_id, 3.5),
        PageStatus.PENDING,
        "stripe:invoices",
    )


def ids(pages: list[PlannedPage]) -> set[str]:
    return {planned.page_id for planned in pages}


@pytest_asyncio.fixture
async def database(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        await ensure_indexes(client[mongodb_database])
        yield client[mongodb_database]
    finally:
        await client.close()


@pytest_asyncio.fixture
async def ledgers(
    mongodb_url: str, database: AsyncDatabase[dict[str, Any]]
) -> AsyncIterator[tuple[MongoPageLedger, MongoPageLedger]]:
    """Two processes' ledgers over one store, each with its own client."""
    clients: list[AsyncMongoClient[dict[str, Any]]] = [
        AsyncMongoClient(mongodb_url, tz_aware=True) for _ in range(2)
    ]
    try:
        first, second = (MongoPageLedger(client, client[database.name]) for client in clients)
        yield first, second
    finally:
        for client in clients:
            await client.close()


async def test_claim_stale_takes_the_pending_pages_published_before_the_cutoff_and_restamps_them(
    ledgers: tuple[MongoPageLedger, MongoPageLedger],
) -> None:
    ledger, _ = ledgers
    await ledger.add_roots([page("r1"), page("r2"), page("r3")], T0)
    await ledger.add_roots([page("o1", OTHER_IMPORT)], T0)
    t1 = T0 + timedelta(minutes=1)
    assert await ledger.complete(f"{IMPORT}:r1", 100, [page("c1", parent_id=f"{IMPORT}:r1")], t1)

    # r1 is done, c1 was published at t1 (not before it), o1 is another import's.
    t2 = T0 + timedelta(minutes=10)
    claimed = await ledger.claim_stale(IMPORT, t1, t2, 500)
    assert ids(claimed) == {f"{IMPORT}:r2", f"{IMPORT}:r3"}
    r2 = next(planned for planned in claimed if planned.page_id == f"{IMPORT}:r2")
    assert r2 == page("r2").page
    assert await ledger.claim_stale(IMPORT, t1, t2, 500) == []

    # Re-stamped at t2: after t2 they are stale again, c1 with them; at most `limit` a round.
    t3 = T0 + timedelta(minutes=20)
    first = await ledger.claim_stale(IMPORT, t3, t3, 2)
    rest = await ledger.claim_stale(IMPORT, t3, t3, 2)
    assert len(first) == 2
    assert ids(first) | ids(rest) == {f"{IMPORT}:r2", f"{IMPORT}:r3", f"{IMPORT}:c1"}
    assert ids(await ledger.claim_stale(OTHER_IMPORT, t3, t3, 500)) == {f"{OTHER_IMPORT}:o1"}


async def test_of_two_processes_claiming_stale_pages_at_once_only_one_gets_each_page(
    ledgers: tuple[MongoPageLedger, MongoPageLedger],
) -> None:
    first, second = ledgers
    roots = [page(f"r{n}") for n in range(40)]
    await first.add_roots(roots, T0)
    now = T0 + timedelta(minutes=10)

    mine, theirs = await asyncio.gather(
        first.claim_stale(IMPORT, now, now, 500), second.claim_stale(IMPORT, now, now, 500)
    )

    assert not ids(mine) & ids(theirs)
    assert ids(mine) | ids(theirs) == {root.page.page_id for root in roots}


async def test_claim_unpublished_children_takes_the_pages_pending_children_published_before_the_cutoff(
    ledgers: tuple[MongoPageLedger, MongoPageLedger],
) -> None:
    ledger, other = ledgers
    parent = f"{IMPORT}:r1"
    await ledger.add_roots([page("r1"), page("r2")], T0)
    t1 = T0 + timedelta(minutes=1)
    children = [page(name, parent_id=parent) for name in ("c1", "c2", "c3")]
    assert await ledger.complete(parent, 100, children, t1)
    assert await ledger.complete(f"{IMPORT}:c2", 100, [], t1)
    assert await ledger.complete(f"{IMPORT}:r2", 100, [page("d1", parent_id=f"{IMPORT}:r2")], t1)

    now = T0 + timedelta(minutes=2)
    # Published at t1, not before it: left alone, so a redelivery does not send them twice.
    assert await ledger.claim_unpublished_children(IMPORT, parent, t1, now) == []
    # c2 is done, d1 is another page's child.
    mine, theirs = await asyncio.gather(
        ledger.claim_unpublished_children(IMPORT, parent, now, now),
        other.claim_unpublished_children(IMPORT, parent, now, now),
    )
    assert not ids(mine) & ids(theirs)
    assert ids(mine) | ids(theirs) == {f"{IMPORT}:c1", f"{IMPORT}:c3"}
    claimed = {planned.page_id: planned for planned in [*mine, *theirs]}
    assert claimed[f"{IMPORT}:c1"] == children[0].page
    assert await ledger.claim_unpublished_children(IMPORT, parent, now, now) == []
    # A page not done has no children recorded; an unknown page neither.
    assert await ledger.claim_unpublished_children(IMPORT, f"{IMPORT}:c1", now, now) == []
    assert await ledger.claim_unpublished_children(IMPORT, f"{IMPORT}:nope", now, now) == []


class _Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_pages_read_together_are_one_query_and_each_read_gets_its_own_page(
    mongodb_url: str, database: AsyncDatabase[dict[str, Any]]
) -> None:
    listener = _Finds()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    try:
        ledger = MongoPageLedger(client, client[database.name])
        await ledger.add_roots([page("g1"), page("g2"), page("g3")], T0)
        assert await ledger.complete(f"{IMPORT}:g2", 100, [], T0)
        before = listener.finds

        g1, g2, again, missing, g3 = await asyncio.gather(
            *(ledger.get(f"{IMPORT}:{name}") for name in ("g1", "g2", "g1", "nope", "g3"))
        )

        assert listener.finds == before + 1
        assert g1 == again == page("g1")
        assert g3 == page("g3")
        assert g2 is not None
        assert (g2.status, g2.objects) == (PageStatus.DONE, 100)
        assert missing is None
        # A read asked for later is a query of its own, and sees what was written before it.
        assert await ledger.complete(f"{IMPORT}:g1", 7, [], T0)
        done = await ledger.get(f"{IMPORT}:g1")
        assert done is not None
        assert (done.status, done.objects) == (PageStatus.DONE, 7)
        assert listener.finds == before + 2
    finally:
        await client.close()
