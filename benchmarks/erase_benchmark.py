"""Measures erasing one account's processor data: records/s, the process's peak memory, the load.

    uv run python benchmarks/erase_benchmark.py                   # 1,000,000 records
    uv run python benchmarks/erase_benchmark.py --records 100000  # fewer

Starts Kafka and the store (``devstack``; ``KAFKA_BOOTSTRAP_SERVERS``/``MONGODB_URL`` reuse running
ones), seeds ``--records`` canonical records of one account across the six collections (and a few of
a neighbouring account, which must survive), then runs the importer's erase use case in this process
over the real adapters (``MongoErasureStore``, tombstones through the importer's bulk producer). It
prints the records erased per second, this process's resident memory before and at its peak (the
erase must not grow with the account), the time seeding took, and the machine's load average at the
start and the end (the machine is shared; say so with the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from contracts.events import Event
from contracts.records import RECORD_TYPES
from devstack.infra import provide_kafka, provide_store
from importer.adapters.kafka_publisher import KafkaPublisher
from importer.adapters.mongo_erasure import MongoErasureStore
from importer.service.dependencies import utc_now
from importer.service.erase_account import AccountErasure, erase_account
from pymongo import AsyncMongoClient, MongoClient

SEED_BATCH: Final = 5000
NEIGHBOUR_RECORDS: Final = 100
#: How the seeded records spread over the collections, roughly as an account's history does.
SHARES: Final = {
    "invoices": 0.55,
    "subscriptions": 0.15,
    "customers": 0.15,
    "cancellations": 0.05,
    "prices": 0.05,
    "coupons": 0.05,
}


def memory_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def spread(records: int) -> dict[str, int]:
    """Records per collection, ``records`` in all."""
    counts = {collection: int(records * share) for collection, share in SHARES.items()}
    counts["invoices"] += records - sum(counts.values())
    return counts


def seed(url: str, database: str, account_id: str, counts: dict[str, int]) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(url, tz_aware=True)
    now = datetime.now(UTC)
    try:
        db = client[database]
        for collection, count in counts.items():
            for start in range(0, count, SEED_BATCH):
                db[collection].insert_many(
                    [
                        {
                            "_id": f"{account_id}:stripe:{collection[:3]}_{index:08d}",
                            "account_id": account_id,
                            "processor": "stripe",
                            "object_id": f"{collection[:3]}_{index:08d}",
                            "amount": index,
                            "currency": "EUR",
                            "import_id": "seed",
                            "imported_at": now,
                        }
                        for index in range(start, min(count, start + SEED_BATCH))
                    ],
                    ordered=False,
                )
        neighbour = f"{account_id}2"
        db.customers.insert_many(
            [
                {"_id": f"{neighbour}:stripe:cus_{index}", "account_id": neighbour, "processor": "stripe"}
                for index in range(NEIGHBOUR_RECORDS)
            ]
        )
    finally:
        client.close()


class _Announcement:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish_connection_event(self, event: Event) -> None:
        self.events.append(event)


async def erase(url: str, database: str, bootstrap: str, account_id: str) -> tuple[int, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    publisher = KafkaPublisher(bootstrap, client_id="erase-benchmark")
    await publisher.start()
    try:
        erasure = AccountErasure(
            store=MongoErasureStore(client, client[database]),
            tombstones=publisher,
            events=_Announcement(),
            clock=utc_now,
        )
        started = time.perf_counter()
        job = await erase_account(erasure, account_id, f"conn_{uuid.uuid4().hex[:8]}")
        return job.records_erased, time.perf_counter() - started
    finally:
        await publisher.stop()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records of the erased account")
    args = parser.parse_args(argv)
    load_start = [round(value, 1) for value in os.getloadavg()]
    log_dir = Path(tempfile.mkdtemp(prefix="erase-benchmark-"))
    kafka = provide_kafka(log_dir)
    store = provide_store(log_dir)
    database = f"bench_erase_{uuid.uuid4().hex[:8]}"
    account_id = f"acct_{uuid.uuid4().hex[:10]}"
    counts = spread(args.records)
    try:
        print(f"seeding {args.records:,} records ...", flush=True)
        seeded_at = time.perf_counter()
        seed(store.address, database, account_id, counts)
        seed_s = time.perf_counter() - seeded_at
        rss_before = memory_kib("VmRSS")
        print("erasing ...", flush=True)
        erased, erase_s = asyncio.run(erase(store.address, database, kafka.address, account_id))
        peak = memory_kib("VmHWM")
        check: MongoClient[dict[str, Any]] = MongoClient(store.address)
        left = sum(
            check[database][record_type.collection].count_documents({"account_id": account_id})
            for record_type in RECORD_TYPES
        )
        neighbours = check[database].customers.count_documents({"account_id": f"{account_id}2"})
        check.drop_database(database)
        check.close()
    finally:
        store.close()
        kafka.close()
    load_end = [round(value, 1) for value in os.getloadavg()]
    print(f"records seeded        {args.records:,} ({seed_s:.0f} s) over {counts}")
    print(f"records erased        {erased:,} (left: {left}, neighbour kept: {neighbours})")
    print(f"erase time            {erase_s:.1f} s")
    print(f"erase rate            {erased / erase_s:,.0f} records/s (a tombstone each)")
    print(f"resident memory       {rss_before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB")
    print(f"load average          {load_start} at the start, {load_end} at the end ({os.cpu_count()} cores)")
    print(f"store                 {store.origin}, broker {kafka.origin}")
    return 0 if erased == args.records and left == 0 and neighbours == NEIGHBOUR_RECORDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
