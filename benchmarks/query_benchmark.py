"""Measures the importer's read API on a big account: churn over 24 months and cancellation pages.

    uv run python benchmarks/query_benchmark.py                          # 100,000 subscriptions
    uv run python benchmarks/query_benchmark.py --subscriptions 20000    # fewer

Starts the store (``devstack``; ``MONGODB_URL`` reuses a running one) and seeds, in a database of its
own, ``--subscriptions`` subscriptions of one account (about 1.25 per customer, 70% USD and 30% EUR,
started over 40 months, a third cancelled, some in trial, some with a percent discount), their
cancellations as the importer stores them (``domain.cancellations.cancellation_of``,
``adapters.mongo_records.record_document``), a completed import, and two other tenants with a
quarter as many each. Then, through the real importer HTTP app (``bootstrap.build`` over the real
Mongo adapters, called in process through an ASGI client, with a valid bearer token), it measures:

- ``GET …/metrics/churn?from=&to=`` over 24 months: the first query (no summary yet: it builds the
  account's churn summary from every subscription), then ``--churn-requests`` times (the summary
  current): p50/p99/max, and the event loop's longest stall while the queries ran (a task that
  sleeps 1 ms in a loop and records how late it wakes);
- the same query right after a sync write of one subscription, ``--changed-requests`` times (the
  summary behind by one more change each time: the query corrects it by the changed
  subscriptions' customers);
- ``GET …/metrics/recovered-revenue`` over the same 24 months, ``--revenue-requests`` times;
- the same figures for the former way (every field of every subscription read, then computed on
  the event loop), unless ``--no-former``;
- ``GET …/cancellations`` pages of 50: the first page ``--pages`` times, then ``--pages`` pages
  walked by cursor, then the first page of a one-month ``since``/``until`` window;

and this process's resident memory before and at its peak, with the machine's load beside the
figures (cores, load average, share of the machine busy, CPU seconds of the store): the machine is
shared, and the development store's scans are not a production MongoDB's, so say so with them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
from contracts.events import Processor
from contracts.records import CancellationRecord, Discount, SubscriptionItem, SubscriptionRecord
from devstack.infra import provide_store
from devstack.settings import new_credentials_key
from erase_benchmark import memory_kib
from fastapi import FastAPI
from importer.adapters.mongo_churn import MongoChurnSummaries
from importer.adapters.mongo_imports import MongoImportRepository
from importer.adapters.mongo_offers import MongoRecoveredRevenueSources
from importer.adapters.mongo_records import MongoRecordStore, record_document
from importer.adapters.mongo_store import ensure_indexes
from importer.adapters.mongo_sync import MongoSyncRecords
from importer.bootstrap import build
from importer.domain.cancellations import cancellation_of
from importer.domain.churn import monthly_churn
from importer.domain.model import ImportJob, ImportStatus
from importer.settings import ImporterSettings
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sync_benchmark import Load, LoadMeter, percentiles

SEED_BATCH: Final = 5000
SECRET: Final = "query-benchmark-secret-of-at-least-32-bytes"  # noqa: S105 (a throwaway token key)
FROM_MONTH: Final = "2024-11"
TO_MONTH: Final = "2026-10"
#: Subscriptions start over the 40 months before the window's end.
HISTORY_START: Final = datetime(2023, 7, 1, tzinfo=UTC)
HISTORY_END: Final = datetime(2026, 10, 31, tzinfo=UTC)
OTHER_TENANTS: Final = 2
GOAL_P99_MS: Final = 200.0


def subscriptions_of(account_id: str, count: int, seed: int) -> list[SubscriptionRecord]:
    rng = random.Random(seed)  # noqa: S311 (sample data, reproducible)
    span_s = (HISTORY_END - HISTORY_START).total_seconds()
    customers = max(1, int(count / 1.25))
    records: list[SubscriptionRecord] = []
    for index in range(count):
        started = HISTORY_START + timedelta(seconds=rng.random() * span_s)
        status = "active"
        canceled = ended = trial_end = None
        draw = rng.random()
        if draw < 0.33:
            status = "canceled"
            ended = started + timedelta(days=rng.randint(20, 700))
            if ended > HISTORY_END:
                ended = HISTORY_END - timedelta(days=1)
            canceled = ended if ended > started else None
            ended = canceled
            if canceled is None:
                status = "active"
        elif draw < 0.40:
            status = "trialing"
            trial_end = started + timedelta(days=14)
        elif draw < 0.42:
            status = "past_due"
        interval = "year" if rng.random() < 0.15 else "month"
        items = [
            SubscriptionItem(
                price_id=f"price_{rng.randint(1, 40)}",
                unit_amount=rng.choice([900, 1900, 4900, 9900, 19900]) * (10 if interval == "year" else 1),
                quantity=rng.randint(1, 3),
                interval=interval,
            )
            for _ in range(1 if rng.random() < 0.8 else 2)
        ]
        discounts = [Discount(percent_off=rng.choice([10.0, 20.0, 50.0]))] if rng.random() < 0.1 else []
        records.append(
            SubscriptionRecord(
                account_id=account_id,
                processor=Processor.STRIPE,
                object_id=f"sub_{index:08d}",
                created_at=started,
                customer_id=f"cus_{rng.randrange(customers):08d}",
                status=status,
                currency="USD" if rng.random() < 0.7 else "EUR",
                items=items,
                discounts=discounts,
                started_at=started,
                trial_end=trial_end,
                current_period_end=started + timedelta(days=30),
                canceled_at=canceled,
                ended_at=ended,
                cancel_reason="cancellation_requested" if canceled else None,
                cancel_feedback="too_expensive" if canceled and rng.random() < 0.5 else None,
                cancel_comment="We moved to another tool, thanks for everything." if canceled else None,
                plan=f"plan_{rng.randint(1, 12)}",
            )
        )
    return records


def seed(url: str, database: str, accounts: dict[str, int]) -> tuple[int, int]:
    """Subscriptions and their cancellations of each account; returns (subscriptions, cancellations)."""
    client: MongoClient[dict[str, Any]] = MongoClient(url, tz_aware=True)
    now = datetime.now(UTC)
    stored = [0, 0]
    try:
        db = client[database]
        for number, (account_id, count) in enumerate(accounts.items()):
            subscriptions = subscriptions_of(account_id, count, seed=number)
            for start in range(0, count, SEED_BATCH):
                batch = subscriptions[start : start + SEED_BATCH]
                db.subscriptions.insert_many([record_document(s, "seed", now) for s in batch], ordered=False)
                cancellations: list[CancellationRecord] = [
                    c for c in (cancellation_of(s, {}) for s in batch) if c is not None
                ]
                if cancellations:
                    db.cancellations.insert_many(
                        [record_document(c, "seed", now) for c in cancellations], ordered=False
                    )
                stored[0] += len(batch)
                stored[1] += len(cancellations)
    finally:
        client.close()
    return stored[0], stored[1]


@dataclass
class Timed:
    name: str
    requests: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    longest_loop_stall_ms: float = 0.0
    #: CPU of this process (the importer app, its worker threads and the ASGI client) per request.
    process_cpu_ms_per_request: float = 0.0
    load: Load = field(default_factory=Load)

    def line(self) -> str:
        figures = ", ".join(f"{key} {value:.0f} ms" for key, value in self.latency_ms.items())
        return (
            f"{self.name:<34} {self.requests:>4} requests: {figures};"
            f" longest event-loop stall {self.longest_loop_stall_ms:.0f} ms;"
            f" importer CPU {self.process_cpu_ms_per_request:.0f} ms a request\n"
            f"{'':<34} load: {self.load.line()}"
        )


class StallWatch:
    """How late a task that sleeps 1 ms at a time wakes up: the event loop's longest stall."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.longest_s = max(self.longest_s, time.perf_counter() - before - 0.001)

    def __enter__(self) -> StallWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def timed(
    name: str,
    requests: Sequence[Callable[[], Awaitable[None]]],
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> Timed:
    """``prepare`` (not timed) runs before each request."""
    meter = LoadMeter()
    cpu_before = time.process_time()
    durations: list[float] = []
    with StallWatch() as watch:
        await asyncio.sleep(0.01)
        for request in requests:
            if prepare is not None:
                await prepare()
            started = time.perf_counter()
            await request()
            durations.append((time.perf_counter() - started) * 1000)
    return Timed(
        name,
        len(durations),
        {key: round(value, 1) for key, value in percentiles(durations).items()},
        round(watch.longest_s * 1000, 1),
        round((time.process_time() - cpu_before) * 1000 / max(1, len(durations)), 1),
        meter.stop(),
    )


async def importer_app(db: AsyncDatabase[dict[str, Any]], url: str, account_id: str) -> FastAPI:
    """The importer's HTTP app over the real Mongo adapters, the account's import completed."""
    await ensure_indexes(db)
    await MongoRecoveredRevenueSources(db).ensure_indexes()
    imports, records = MongoImportRepository(db), MongoRecordStore(db)
    now = datetime.now(UTC)
    await imports.create(
        ImportJob(
            import_id=f"imp_{uuid.uuid4().hex[:10]}",
            account_id=account_id,
            connection_id="conn_bench",
            processor=Processor.STRIPE,
            contact_email="ops@example.com",
            status=ImportStatus.COMPLETED,
            created_at=now,
            started_at=now,
            finished_at=now,
        )
    )
    settings = ImporterSettings.model_validate(
        {"api_jwt_secret": SECRET, "credentials_keys": new_credentials_key(), "mongodb_url": url}
    )
    return build(
        settings,
        imports=imports,
        records=records,
        queries=records,
        recovered_revenue=MongoRecoveredRevenueSources(db),
        churn_summaries=MongoChurnSummaries(db),
    )


def sync_changes(db: AsyncDatabase[dict[str, Any]], account_id: str) -> Callable[[], Awaitable[None]]:
    """Each call: a sync write of another of the account's subscriptions (cancelled, or active)."""

    sync = MongoSyncRecords(db)
    changed = [0]

    async def sync_change() -> None:
        changed[0] += 1
        index = changed[0]
        ended = HISTORY_END - timedelta(days=index)
        subscription = SubscriptionRecord(
            account_id=account_id,
            processor=Processor.STRIPE,
            object_id=f"sub_{index * 7:08d}",
            customer_id=f"cus_{index:08d}",
            status="canceled" if index % 2 else "active",
            currency="USD",
            items=[SubscriptionItem(unit_amount=1900)],
            started_at=HISTORY_START,
            canceled_at=ended if index % 2 else None,
            ended_at=ended if index % 2 else None,
        )
        assert await sync.put(subscription, index, datetime.now(UTC))

    return sync_change


async def measure(url: str, database: str, account_id: str, args: argparse.Namespace) -> list[Timed]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    db = client[database]
    app = await importer_app(db, url, account_id)
    records = MongoRecordStore(db)
    sync_change = sync_changes(db, account_id)

    token = jwt.encode({"sub": account_id, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    base = f"/v1/accounts/{account_id}"
    results: list[Timed] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://importer",
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    ) as http:

        async def churn() -> None:
            answer = await http.get(f"{base}/metrics/churn", params={"from": FROM_MONTH, "to": TO_MONTH})
            answer.raise_for_status()
            assert len(answer.json()["items"]) == 48

        print("churn ...", flush=True)
        # The first query finds no summary: it builds it from every subscription.
        results.append(await timed("churn, first (summary built)", [churn]))
        results.append(await timed("churn, 24 months", [churn] * args.churn_requests))
        print("churn after a sync change ...", flush=True)
        results.append(
            await timed("churn after a sync change", [churn] * args.changed_requests, prepare=sync_change)
        )

        async def revenue() -> None:
            params = {"from": FROM_MONTH, "to": TO_MONTH}
            answer = await http.get(f"{base}/metrics/recovered-revenue", params=params)
            answer.raise_for_status()

        print("recovered revenue ...", flush=True)
        results.append(await timed("recovered revenue, 24 months", [revenue] * args.revenue_requests))

        if args.former:
            print("churn, the former way ...", flush=True)

            async def former() -> None:
                coupons = await records.coupons(account_id, "stripe")
                subscriptions = [s async for s in records.subscriptions(account_id, "stripe")]
                monthly_churn(subscriptions, coupons, from_month=FROM_MONTH, to_month=TO_MONTH)

            former_runs = [former] * args.former_requests
            results.append(await timed("churn, former (all fields, on loop)", former_runs))

        print("cancellations ...", flush=True)

        async def first_page() -> None:
            (await http.get(f"{base}/cancellations", params={"limit": "50"})).raise_for_status()

        results.append(await timed("cancellations, first page of 50", [first_page] * args.pages))

        cursor: list[str | None] = [None]

        async def next_page() -> None:
            params = {"limit": "50", **({"cursor": cursor[0]} if cursor[0] else {})}
            answer = await http.get(f"{base}/cancellations", params=params)
            answer.raise_for_status()
            cursor[0] = answer.json()["next_cursor"]

        results.append(await timed("cancellations, walked by cursor", [next_page] * args.pages))

        async def window() -> None:
            params = {"limit": "50", "since": "2025-06-01T00:00:00Z", "until": "2025-07-01T00:00:00Z"}
            (await http.get(f"{base}/cancellations", params=params)).raise_for_status()

        results.append(await timed("cancellations, one-month window", [window] * args.pages))
    await client.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscriptions", type=int, default=100_000, help="of the measured account")
    parser.add_argument("--churn-requests", type=int, default=20)
    parser.add_argument("--pages", type=int, default=50, help="cancellation pages of each kind")
    parser.add_argument("--no-former", dest="former", action="store_false", help="skip the former way")
    parser.add_argument("--former-requests", type=int, default=5)
    parser.add_argument("--changed-requests", type=int, default=3, help="churn queries after a sync change")
    parser.add_argument("--revenue-requests", type=int, default=3)
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="query-benchmark-"))
    store = provide_store(log_dir)
    database = f"bench_query_{uuid.uuid4().hex[:8]}"
    account_id = f"acct_{uuid.uuid4().hex[:10]}"
    accounts = {account_id: args.subscriptions}
    accounts.update(
        {f"acct_other{n}_{uuid.uuid4().hex[:6]}": args.subscriptions // 4 for n in range(OTHER_TENANTS)}
    )
    try:
        print(f"seeding {args.subscriptions:,} subscriptions, {OTHER_TENANTS} other tenants ...", flush=True)
        seeded_at = time.perf_counter()
        subscriptions, cancellations = seed(store.address, database, accounts)
        seed_s = time.perf_counter() - seeded_at
        gc.collect()
        # The peak from here on: the queries', not the seeding's.
        Path("/proc/self/clear_refs").write_text("5")
        rss_before = memory_kib("VmRSS")
        results = asyncio.run(measure(store.address, database, account_id, args))
        peak = memory_kib("VmHWM")
        cleanup: MongoClient[dict[str, Any]] = MongoClient(store.address)
        cleanup.drop_database(database)
        cleanup.close()
    finally:
        store.close()
    print(
        f"store ({store.origin}): {subscriptions:,} subscriptions and {cancellations:,} cancellations"
        f" seeded in {seed_s:.0f} s; the account holds {args.subscriptions:,} subscriptions"
    )
    for result in results:
        print(result.line())
    churn_p99 = results[1].latency_ms.get("p99", 0.0)
    verdict = "met" if churn_p99 < GOAL_P99_MS else "NOT met"
    print(f"goal p99 < {GOAL_P99_MS:.0f} ms for churn: {verdict} ({churn_p99:.0f} ms)")
    print(
        f"this process's memory: {rss_before / 1024:.0f} MiB before the queries,"
        f" peak {peak / 1024:.0f} MiB during them" + (" (the former way's included)" if args.former else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
