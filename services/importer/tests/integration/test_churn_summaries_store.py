"""Churn from stored summaries on the real store: the answer is the full computation's over the
records as they are, a current summary is answered without reading the subscriptions, and a sync
change (a cancellation, a reactivation, a deletion, a coupon), an import writing, or the background
rebuild each bring the next answer to the records."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from contracts.events import Processor
from contracts.records import CouponRecord, SubscriptionRecord
from devstack.settings import new_credentials_key
from importer.adapters.mongo_churn import MongoChurnSummaries
from importer.adapters.mongo_imports import MongoImportRepository
from importer.adapters.mongo_records import MongoRecordStore
from importer.adapters.mongo_store import ensure_indexes
from importer.adapters.mongo_sync import MongoSyncRecords
from importer.bootstrap import build
from importer.domain.churn import ChurnRow, monthly_churn
from importer.domain.model import ImportJob, ImportStatus
from importer.service import churn_summaries
from importer.service.churn_summaries import ChurnSummaryKeeper, rebuild_unsettled
from importer.settings import ImporterSettings
from metric_records_kit import generated_coupons, generated_subscriptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

ACCOUNT = "acc_churn"
PROCESSOR = "stripe"
FROM, TO = "2023-11", "2026-12"
SECRET = "churn-summary-test-secret-of-at-least-32-bytes"


class CountingRecords(MongoRecordStore):
    """The real record store, counting the reads of every subscription of an account."""

    reads = 0

    def subscription_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[SubscriptionRecord]]:
        self.reads += 1
        return super().subscription_batches(account_id, processor, fields=fields, batch_size=batch_size)


@pytest_asyncio.fixture
async def database(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        database = client[mongodb_database]
        await ensure_indexes(database)
        yield database
    finally:
        await client.close()


def job(status: ImportStatus, created_at: datetime, import_id: str) -> ImportJob:
    return ImportJob(
        import_id=import_id,
        account_id=ACCOUNT,
        connection_id="conn_churn",
        processor=Processor.STRIPE,
        contact_email="ops@example.com",
        status=status,
        created_at=created_at,
        started_at=created_at,
        finished_at=None if status is ImportStatus.RUNNING else created_at,
    )


async def expected(database: AsyncDatabase[dict[str, Any]]) -> list[ChurnRow]:
    records = MongoRecordStore(database)
    subscriptions = [s async for s in records.subscriptions(ACCOUNT, PROCESSOR)]
    coupons = await records.coupons(ACCOUNT, PROCESSOR)
    return monthly_churn(subscriptions, coupons, from_month=FROM, to_month=TO)


async def imported(database: AsyncDatabase[dict[str, Any]]) -> list[SubscriptionRecord]:
    subscriptions = generated_subscriptions(ACCOUNT, 400, seed=11, customers=150)
    now = datetime.now(UTC) - timedelta(minutes=5)
    await MongoRecordStore(database).write("imp_1", [*subscriptions, *generated_coupons(ACCOUNT)], now)
    await MongoRecordStore(database).write("imp_o", generated_subscriptions("acc_other", 60, seed=12), now)
    assert await MongoImportRepository(database).create(job(ImportStatus.COMPLETED, now, "imp_1"))
    return subscriptions


async def test_a_sync_change_is_in_the_next_answer_and_a_current_summary_reads_no_subscription(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    subscriptions = await imported(database)
    records = CountingRecords(database)
    keeper = ChurnSummaryKeeper(
        MongoImportRepository(database), records, MongoChurnSummaries(database), lambda: datetime.now(UTC)
    )
    sync = MongoSyncRecords(database)

    async def answer() -> list[ChurnRow]:
        return (await keeper.current(ACCOUNT, PROCESSOR)).rows(from_month=FROM, to_month=TO)

    first = await answer()
    assert first == await expected(database)
    assert any(row.churned_customers for row in first)
    assert records.reads == 1
    assert await answer() == first
    assert records.reads == 1  # current: answered from the stored summary

    # A paying subscription is cancelled at the processor, then reactivated: each answer is the
    # summary corrected by that subscription's customer, no subscription of the account read.
    paying = next(
        s for s in subscriptions if s.status == "active" and s.trial_end is None and not s.discounts
    )
    ended = datetime(2025, 3, 10, tzinfo=UTC)
    canceled = paying.model_copy(update={"status": "canceled", "canceled_at": ended, "ended_at": ended})
    assert await sync.put(canceled, 100, datetime.now(UTC))
    after_cancel = await answer()
    assert after_cancel == await expected(database)
    assert after_cancel != first
    assert await sync.put(paying, 200, datetime.now(UTC))
    assert await answer() == first

    # A deletion, a move to another customer and currency, a new subscription, written as a listing
    # does (one version for the page).
    assert await sync.remove(SubscriptionRecord.collection, subscriptions[3].key())
    moved = subscriptions[4].model_copy(
        update={"customer_id": subscriptions[9].customer_id, "currency": "GBP"}
    )
    new = generated_subscriptions(ACCOUNT, 1, seed=99)[0].model_copy(update={"object_id": "sub_new"})
    assert await sync.put_many([(moved, 300), (new, 300)], datetime.now(UTC)) == [True, True]
    changed = await answer()
    assert changed == await expected(database)
    assert changed != first
    assert records.reads == 1

    # A coupon's new terms change the MRR of its subscriptions: the summary is rebuilt.
    coupon = CouponRecord(account_id=ACCOUNT, processor=Processor.STRIPE, object_id="co_1", percent_off=90.0)
    assert await sync.put_many([(coupon, 400)], datetime.now(UTC)) == [True]
    repriced = await answer()
    assert repriced == await expected(database)
    assert repriced != changed
    assert records.reads == 2
    reads = records.reads

    # Another account's change leaves this summary current.
    other = generated_subscriptions("acc_other", 1, seed=12)[0].model_copy(update={"status": "paused"})
    assert await sync.put(other, 500, datetime.now(UTC))
    assert await answer() == repriced
    assert records.reads == reads


async def test_random_sync_changes_are_followed_from_the_summary_and_its_shares(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    subscriptions = await imported(database)
    records = CountingRecords(database)
    keeper = ChurnSummaryKeeper(
        MongoImportRepository(database), records, MongoChurnSummaries(database), lambda: datetime.now(UTC)
    )
    sync = MongoSyncRecords(database)
    await keeper.current(ACCOUNT, PROCESSOR)
    rng = random.Random(5)
    pool = generated_subscriptions(ACCOUNT, 200, seed=21, customers=150)
    version = 1000
    for _ in range(25):
        version += 1
        draw = rng.random()
        current = rng.choice(subscriptions)
        if draw < 0.15:
            await sync.remove(SubscriptionRecord.collection, current.key())
        else:
            replacement = rng.choice(pool).model_copy(update={"object_id": current.object_id})
            if draw < 0.5:
                replacement = replacement.model_copy(update={"customer_id": current.customer_id})
            await sync.put(replacement, version, datetime.now(UTC))
        assert (await keeper.current(ACCOUNT, PROCESSOR)).rows(
            from_month=FROM, to_month=TO
        ) == await expected(database)
    assert records.reads == 1  # every answer corrected, none rebuilt

    # A change whose entry is missing (a crash between the version's move and its entry) rebuilds.
    await MongoChurnSummaries(database).inputs_changed(ACCOUNT, PROCESSOR, datetime.now(UTC))
    assert (await keeper.current(ACCOUNT, PROCESSOR)).rows(from_month=FROM, to_month=TO) == await expected(
        database
    )
    assert records.reads == 2


async def test_the_background_rebuild_takes_settled_changes_and_an_import_writing_is_read(
    database: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriptions = await imported(database)
    records = CountingRecords(database)
    summaries = MongoChurnSummaries(database)
    imports = MongoImportRepository(database)
    later = [datetime.now(UTC)]
    keeper = ChurnSummaryKeeper(imports, records, summaries, lambda: later[0])
    await keeper.current(ACCOUNT, PROCESSOR)
    assert records.reads == 1
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 0  # nothing changed

    ended = datetime(2025, 8, 1, tzinfo=UTC)
    for version, subscription in enumerate(subscriptions[:5], start=1):
        update = {"status": "canceled", "canceled_at": ended, "ended_at": ended}
        assert await MongoSyncRecords(database).put(subscription.model_copy(update=update), version, later[0])
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 0  # not settled yet
    later[0] += timedelta(seconds=churn_summaries.CHURN_SETTLE_S + 1)
    # Taken, and left as it is: queries correct it by 5 subscriptions.
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 1
    assert records.reads == 1
    rows = (await keeper.current(ACCOUNT, PROCESSOR)).rows(from_month=FROM, to_month=TO)
    assert rows == await expected(database)
    assert records.reads == 1

    # Once its lease has run out it is taken again; with more changed subscriptions than the
    # background leaves to corrections, it is rebuilt, and then current.
    monkeypatch.setattr(churn_summaries, "CHURN_FOLD_AFTER", 3)
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 0  # leased
    later[0] += timedelta(seconds=churn_summaries.CHURN_REBUILD_LEASE_S + 1)
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 1
    assert records.reads == 2
    assert (await keeper.current(ACCOUNT, PROCESSOR)).rows(from_month=FROM, to_month=TO) == rows
    assert records.reads == 2
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 0

    # An import's completion says nothing of what changed: rebuilt once settled.
    await summaries.inputs_changed(ACCOUNT, PROCESSOR, later[0])
    later[0] += timedelta(seconds=churn_summaries.CHURN_SETTLE_S + 1)
    assert await rebuild_unsettled(keeper, summaries, lambda: later[0]) == 1
    assert records.reads == 3
    assert (await keeper.current(ACCOUNT, PROCESSOR)).rows(from_month=FROM, to_month=TO) == rows
    assert records.reads == 3

    # A re-import runs: what it writes is read by every answer until it ends.
    assert await imports.create(job(ImportStatus.RUNNING, later[0], "imp_2"))
    reimported = generated_subscriptions(ACCOUNT, 30, seed=13, customers=10)
    await MongoRecordStore(database).write("imp_2", reimported, later[0])
    rows = (await keeper.current(ACCOUNT, PROCESSOR)).rows(from_month=FROM, to_month=TO)
    assert rows == await expected(database)
    assert records.reads == 4


async def test_the_http_answer_follows_a_sync_change(
    database: AsyncDatabase[dict[str, Any]], mongodb_url: str
) -> None:
    subscriptions = await imported(database)
    settings = ImporterSettings.model_validate(
        {"api_jwt_secret": SECRET, "credentials_keys": new_credentials_key(), "mongodb_url": mongodb_url}
    )
    records = MongoRecordStore(database)
    app = build(
        settings,
        imports=MongoImportRepository(database),
        records=records,
        queries=records,
        churn_summaries=MongoChurnSummaries(database),
    )
    token = jwt.encode(
        {"sub": ACCOUNT, "exp": int(datetime.now(UTC).timestamp()) + 600}, SECRET, algorithm="HS256"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://importer",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:

        async def answer() -> list[dict[str, Any]]:
            response = await http.get(
                f"/v1/accounts/{ACCOUNT}/metrics/churn", params={"from": FROM, "to": TO}
            )
            assert response.status_code == 200
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        before = await answer()
        assert before == [row.model_dump() for row in await expected(database)]
        ended = datetime(2024, 12, 31, tzinfo=UTC)
        for version, subscription in enumerate(subscriptions[10:20], start=1):
            update = {"status": "canceled", "canceled_at": ended, "ended_at": ended}
            assert await MongoSyncRecords(database).put(
                subscription.model_copy(update=update), version, ended
            )
        after = await answer()
    assert after == [row.model_dump() for row in await expected(database)]
    assert after != before
