"""The metric reads on the real store, batch by batch in worker threads: exactly the domain's
computation over every stored record of the account at the processor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from contracts.events import Processor
from contracts.records import CanonicalRecord
from importer.adapters.mongo_imports import MongoImportRepository
from importer.adapters.mongo_offers import MongoRecoveredRevenueSources
from importer.adapters.mongo_records import MongoRecordStore
from importer.adapters.mongo_store import ensure_indexes
from importer.domain.model import ImportJob, ImportStatus
from importer.domain.recovered_revenue import AppliedOfferRecord, recovered_revenue
from importer.service import recovered_revenue as recovered_revenue_service
from importer.service.recovered_revenue import monthly_recovered_revenue
from metric_records_kit import HISTORY_START, generated_coupons, generated_invoices, generated_subscriptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

ACCOUNT = "acc_metrics"
NOW = datetime(2026, 7, 10, tzinfo=UTC)


@pytest_asyncio.fixture
async def database(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        database = client[mongodb_database]
        await ensure_indexes(database)
        yield database
    finally:
        await client.close()


async def completed_import(database: AsyncDatabase[dict[str, Any]], account_id: str) -> ImportJob:
    job = ImportJob(
        import_id=f"imp_{account_id}",
        account_id=account_id,
        connection_id=f"conn_{account_id}",
        processor=Processor.STRIPE,
        contact_email="ops@example.com",
        status=ImportStatus.COMPLETED,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW,
    )
    assert await MongoImportRepository(database).create(job)
    return job


async def store(records: MongoRecordStore, job: ImportJob, stored: list[CanonicalRecord]) -> None:
    await records.write(job.import_id, stored, NOW)


async def test_recovered_revenue_reads_in_batches_what_the_whole_records_give(
    database: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await completed_import(database, ACCOUNT)
    records = MongoRecordStore(database)
    sources = MongoRecoveredRevenueSources(database)
    subscriptions = generated_subscriptions(ACCOUNT, 300, seed=3)
    invoices = generated_invoices(ACCOUNT, 400, seed=4)
    await store(records, job, [*subscriptions, *invoices, *generated_coupons(ACCOUNT)])
    # Another tenant's records are not read.
    other = await completed_import(database, "acc_other")
    await store(records, other, [*generated_subscriptions("acc_other", 50, seed=5)])
    offers = [
        AppliedOfferRecord(
            f"offer_{index}",
            subscriptions[index * 7].object_id,
            subscriptions[index * 7].currency,
            1000 + index,
            HISTORY_START + timedelta(days=index * 23),
        )
        for index in range(40)
    ]
    for offer in [*offers, AppliedOfferRecord("offer_unknown", "sub_gone", "CHF", 700, NOW)]:
        await sources.record_offer(ACCOUNT, offer)
    monkeypatch.setattr(recovered_revenue_service, "RECOVERED_REVENUE_BATCH_SIZE", 64)  # several batches

    rows = await monthly_recovered_revenue(
        MongoImportRepository(database),
        records,
        sources,
        ACCOUNT,
        from_month="2023-12",
        to_month="2026-08",
        now=NOW,
    )

    expected = recovered_revenue(
        await sources.offers(ACCOUNT),
        {subscription.object_id: subscription for subscription in subscriptions},
        invoices,
        from_month="2023-12",
        to_month="2026-08",
        now=NOW,
    )
    assert rows == expected
    assert any(row.saved_subscriptions for row in rows)
    assert any(row.recovered_invoices for row in rows)
    assert {row.currency for row in rows} == {"USD", "EUR", "GBP", "CHF"}
