"""Cancellation pages on the real store: read in time windows, they are exactly the pages of the one
sorted query (newest first by ``listed_at``, then key), whatever the window, cursor or range."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from contracts.events import Processor
from contracts.records import CancellationRecord, Money
from importer.adapters.mongo_records import MongoRecordStore, record_document
from importer.adapters.mongo_store import ensure_indexes
from pymongo import DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

NOW = datetime.now(UTC)
ACCOUNT = "acc_pages"


@pytest_asyncio.fixture
async def database(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        yield client[mongodb_database]
    finally:
        await client.close()


def cancellations(account_id: str, count: int, seed: int) -> list[CancellationRecord]:
    rng = random.Random(seed)
    shared = NOW - timedelta(days=40)  # many cancellations at one instant: a cursor inside a tie
    records: list[CancellationRecord] = []
    for index in range(count):
        draw = rng.random()
        if draw < 0.15:
            canceled_at: datetime | None = shared
        elif draw < 0.2:
            canceled_at = NOW + timedelta(days=rng.random() * 30)  # listed in the future
        elif draw < 0.25:
            canceled_at = None  # listed at its end, or its creation, or the epoch
        else:
            canceled_at = NOW - timedelta(days=rng.random() * 900)
        ended_at = NOW - timedelta(days=rng.random() * 900) if draw < 0.24 and canceled_at is None else None
        records.append(
            CancellationRecord(
                account_id=account_id,
                processor=Processor.STRIPE,
                object_id=f"sub_{index:04d}",
                customer_id=f"cus_{index:04d}",
                subscription_id=f"sub_{index:04d}",
                canceled_at=canceled_at,
                ended_at=ended_at,
                mrr_lost=Money(amount=100, currency="USD"),
            )
        )
    return records


async def sorted_query(
    database: AsyncDatabase[dict[str, Any]], since: datetime | None, until: datetime | None
) -> list[str]:
    window: dict[str, datetime] = {}
    if since is not None:
        window["$gte"] = since
    if until is not None:
        window["$lt"] = until
    query: dict[str, Any] = {"account_id": ACCOUNT, **({"listed_at": window} if window else {})}
    cursor = database.cancellations.find(query, sort=[("listed_at", DESCENDING), ("_id", DESCENDING)])
    return [document["_id"] async for document in cursor]


async def walked(
    store: MongoRecordStore, since: datetime | None, until: datetime | None, limit: int
) -> list[list[str]]:
    pages: list[list[str]] = []
    after: tuple[datetime, str] | None = None
    while True:
        rows = await store.cancellations_page(ACCOUNT, since=since, until=until, limit=limit + 1, after=after)
        page = rows[:limit]
        pages.append([key for _, key, _ in page])
        if len(rows) <= limit or not page:
            return pages
        after = (page[-1][0], page[-1][1])


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, None),
        (NOW - timedelta(days=200), None),
        (None, NOW - timedelta(days=30)),
        (NOW - timedelta(days=60), NOW - timedelta(days=20)),
        (NOW, NOW - timedelta(days=5)),
    ],
)
async def test_windowed_pages_are_the_sorted_query_s_pages(
    database: AsyncDatabase[dict[str, Any]], since: datetime | None, until: datetime | None
) -> None:
    await ensure_indexes(database)
    documents = [record_document(record, "imp_1", NOW) for record in cancellations(ACCOUNT, 300, seed=1)]
    others = [record_document(record, "imp_2", NOW) for record in cancellations("acc_other", 100, seed=2)]
    await database.cancellations.insert_many(documents + others)
    expected = await sorted_query(database, since, until)

    for window in (timedelta(days=1), timedelta(days=7), timedelta(days=4000)):
        store = MongoRecordStore(database, cancellation_window=window)
        for limit in (1, 7, 50, 500):
            pages = await walked(store, since, until, limit)
            assert [key for page in pages for key in page] == expected
            assert all(len(page) == limit for page in pages[:-1])
