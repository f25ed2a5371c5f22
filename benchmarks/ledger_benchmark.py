"""Times the page ledger's recovery lookups on a big import: ``claim_stale`` and
``claim_unpublished_children`` of ``MongoPageLedger`` over ``--pages`` pages of one import.

    uv run python benchmarks/ledger_benchmark.py                    # 500,000 pages, ~5 minutes
    MONGODB_URL=mongodb://… uv run python benchmarks/ledger_benchmark.py --database bench_ledger

Starts the store (``devstack``; ``MONGODB_URL`` reuses a running one), declares the importer's
indexes (``ensure_indexes``) and fills ``import_pages`` as a long import leaves it: ``--chains``
chains of pages, each page done with its one child recorded, the last page of each chain pending
(so ``--chains`` pending pages among ``--pages``), plus a smaller import beside it. A database
that already holds the pages is reused (``--database``), so the lookups can be timed again after a
change of the adapter on the same data. Then it times, ``--rounds`` times each:

- ``claim_stale`` as recovery calls it every few seconds for each running import, nothing stale
  (pages published just now): what every round costs while an import runs;
- ``claim_stale`` with the pending pages published long ago (each round re-stamps them, so the
  round after finds none: they are put back first);
- ``claim_unpublished_children`` of a done page whose child is pending and stale, as a redelivered
  request of that page calls it, and of a page whose child is done.

Each figure comes with the machine's load average (1, 5, 15 minutes): the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from devstack.infra import provide_store
from importer.adapters.mongo_page_ledger import MongoPageLedger
from importer.adapters.mongo_store import IMPORT_PAGES, ensure_indexes
from pymongo import AsyncMongoClient

IMPORT_ID: Final = "imp_ledger_bench"
OTHER_IMPORT_ID: Final = "imp_ledger_bench_other"
BATCH: Final = 2_000
LONG_AGO: Final = timedelta(hours=1)


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _page_id(import_id: str, chain: int, step: int) -> str:
    return f"{import_id}:invoices:{chain:03d}-{step:07d}"


def _document(import_id: str, chain: int, step: int, *, last: bool, now: datetime) -> dict[str, Any]:
    """A page as ``MongoPageLedger`` stores it: pending if ``last``, else done with its child."""
    parent = None if step == 0 else _page_id(import_id, chain, step - 1)
    document: dict[str, Any] = {
        "_id": _page_id(import_id, chain, step),
        "import_id": import_id,
        "parent_id": parent,
        "resource": "invoices",
        "count_key": "stripe:invoices",
        "created_gte": 1_600_000_000 + chain * 1_000_000,
        "created_lt": 1_600_000_000 + (chain + 1) * 1_000_000,
        "cursor": None if step == 0 else f"in_{chain:03d}{step:07d}",
        "limit": 100,
        "estimated_pages": 10.0,
        "status": "pending" if last else "done",
        "objects": 0 if last else 100,
        "deferred_cancellations": [],
        "cancellations": 0,
        "planned_at": now,
        "published_at": now,
        "done_at": None if last else now,
    }
    if not last:
        document["children"] = [_page_id(import_id, chain, step + 1)]
    return document


async def _fill(client: AsyncMongoClient[dict[str, Any]], database: str, pages: int, chains: int) -> None:
    collection = client[database][IMPORT_PAGES]
    now = datetime.now(UTC)
    for import_id, count in ((IMPORT_ID, pages), (OTHER_IMPORT_ID, pages // 10)):
        steps = count // chains
        batch: list[dict[str, Any]] = []
        started = time.perf_counter()
        for step in range(steps):
            for chain in range(chains):
                batch.append(_document(import_id, chain, step, last=step == steps - 1, now=now))
                if len(batch) >= BATCH:
                    await collection.insert_many(batch, ordered=False)
                    batch = []
        if batch:
            await collection.insert_many(batch, ordered=False)
        print(
            f"filled {import_id}: {steps * chains:,} pages in {time.perf_counter() - started:.1f} s "
            f"(load {_load()})",
            flush=True,
        )


async def _timed(label: str, rounds: int, step: Callable[[], Awaitable[int]]) -> None:
    times: list[float] = []
    found = 0
    for _ in range(rounds):
        started = time.perf_counter()
        found = await step()
        times.append(time.perf_counter() - started)
    times.sort()
    print(
        f"{label}: {len(times)} rounds, median {times[len(times) // 2] * 1000:,.1f} ms, "
        f"max {times[-1] * 1000:,.1f} ms, last found {found} (load {_load()})",
        flush=True,
    )


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as log_dir:
        store = provide_store(Path(log_dir))
        try:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store.address)
            database = client[args.database]
            print(f"store: {store.origin}; load {_load()}", flush=True)
            started = time.perf_counter()
            await ensure_indexes(database)
            print(f"ensure_indexes: {time.perf_counter() - started:.1f} s (load {_load()})", flush=True)
            pages = database[IMPORT_PAGES]
            if await pages.estimated_document_count() == 0:
                await _fill(client, args.database, args.pages, args.chains)
            ledger = MongoPageLedger(client, database)
            pending = {"import_id": IMPORT_ID, "status": "pending"}

            async def stale_none() -> int:
                now = datetime.now(UTC)
                return len(await ledger.claim_stale(IMPORT_ID, now - timedelta(seconds=300), now, 500))

            async def stale_all() -> int:
                await pages.update_many(pending, {"$set": {"published_at": datetime.now(UTC) - LONG_AGO}})
                now = datetime.now(UTC)
                return len(await ledger.claim_stale(IMPORT_ID, now - timedelta(seconds=300), now, 500))

            steps = args.pages // args.chains
            parent_of_pending = _page_id(IMPORT_ID, 0, steps - 2)
            parent_of_done = _page_id(IMPORT_ID, 0, steps // 2)

            async def children_pending() -> int:
                await pages.update_one(
                    {"_id": _page_id(IMPORT_ID, 0, steps - 1)},
                    {"$set": {"published_at": datetime.now(UTC) - LONG_AGO}},
                )
                now = datetime.now(UTC)
                found = await ledger.claim_unpublished_children(
                    IMPORT_ID, parent_of_pending, now - timedelta(seconds=5), now
                )
                return len(found)

            async def children_done() -> int:
                now = datetime.now(UTC)
                found = await ledger.claim_unpublished_children(
                    IMPORT_ID, parent_of_done, now - timedelta(seconds=5), now
                )
                return len(found)

            total = await pages.count_documents({"import_id": IMPORT_ID})
            print(f"{total:,} pages of the import, {args.chains} pending", flush=True)
            await _timed("claim_stale, none stale", args.rounds, stale_none)
            await _timed("claim_stale, every pending page stale", args.rounds, stale_all)
            await _timed("claim_unpublished_children, child pending", args.rounds, children_pending)
            await _timed("claim_unpublished_children, child done", args.rounds, children_done)
            await client.close()
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=500_000)
    parser.add_argument("--chains", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="bench_ledger")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
