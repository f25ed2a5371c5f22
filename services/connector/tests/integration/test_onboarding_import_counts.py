"""The import counts the onboarding page shows, in the real store: kept per import, never lowered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from connector.adapters.mongo_import_counts import MongoImportCounts
from connector.domain.import_counts import ImportCounts
from pymongo import AsyncMongoClient

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def counts(mongodb_url: str, mongodb_database: str) -> AsyncIterator[MongoImportCounts]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        yield MongoImportCounts(client[mongodb_database])
    finally:
        await client.close()


async def test_counts_only_grow_and_stay_with_their_account(counts: MongoImportCounts) -> None:
    assert await counts.counts_of("acct_a", "imp_1") is None

    await counts.record("acct_a", "imp_1", {}, at=AT)
    await counts.record("acct_a", "imp_1", {"customers": 120, "invoices": 40}, at=AT)
    await counts.record("acct_a", "imp_1", {"customers": 100}, at=AT)  # a late, older report
    await counts.record("acct_a", "imp_1", {"customers": 125, "a.b": 9, "$x": 1}, at=AT, past_cancellations=7)

    assert await counts.counts_of("acct_a", "imp_1") == ImportCounts(
        "imp_1", {"customers": 125, "invoices": 40}, past_cancellations=7
    )
    assert await counts.counts_of("acct_b", "imp_1") is None


async def test_the_first_report_of_an_import_is_kept_whole(counts: MongoImportCounts) -> None:
    await counts.record("acct_a", "imp_2", {"customers": 0, "products": 7}, at=AT)
    await counts.record("acct_a", "imp_2", {"customers": 59, "products": 7}, at=AT)

    expected = ImportCounts("imp_2", {"customers": 59, "products": 7})
    assert await counts.counts_of("acct_a", "imp_2") == expected
