"""Erasing an account's processor data (``ProcessorDisconnected.erase``) on the real broker and store:
after an import from the fake processor, across an importer killed mid-erase, with a store that fails
between a batch's tombstones and its deletion, and asked for twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.events import Event, Processor, ProcessorDisconnected
from contracts.records import RECORD_TYPES
from contracts.sync import SYNC_STATE_COLLECTION
from devstack.settings import StackSecrets
from importer.adapters.kafka_publisher import KafkaPublisher
from importer.adapters.mongo_erasure import MongoErasureStore
from importer.domain.erasure import ErasureStatus
from importer.service.dependencies import utc_now
from importer.service.erase_account import AccountErasure, erase_account
from importer_integration_kit import Connection, FakeProcessors, Importers, connect, trigger, wait_until
from pymongo import AsyncMongoClient
from pymongo.database import Database

pytestmark = pytest.mark.infra

IMPORT_TIMEOUT_S = 180.0
TOPIC_OF = {record_type.collection: record_type.topic for record_type in RECORD_TYPES}


def stored_keys(database: Database[dict[str, Any]], account_id: str) -> set[tuple[str, str]]:
    """``(billing topic, key)`` of every record of the account in the six collections."""
    prefix = f"{account_id}:"
    return {
        (topic, str(document["_id"]))
        for collection, topic in TOPIC_OF.items()
        for document in database[collection].find({"account_id": account_id}, {"_id": 1})
        if str(document["_id"]).startswith(prefix)
    }


def seed_customers(database: Database[dict[str, Any]], account_id: str, count: int) -> None:
    now = datetime.now(UTC)
    for start in range(0, count, 5000):
        database.customers.insert_many(
            [
                {
                    "_id": f"{account_id}:stripe:cus_{index:07d}",
                    "account_id": account_id,
                    "processor": "stripe",
                    "object_id": f"cus_{index:07d}",
                    "email": f"c{index}@example.com",
                    "import_id": "seed",
                    "imported_at": now,
                }
                for index in range(start, min(count, start + 5000))
            ]
        )


async def ask_erase(producer: AIOKafkaProducer, account_id: str, connection_id: str) -> None:
    event = ProcessorDisconnected(account_id=account_id, connection_id=connection_id, erase=True)
    await producer.send_and_wait(topics.CONNECTIONS, event.model_dump_json().encode(), key=event.key())


def disconnected(database: Database[dict[str, Any]], connection: Connection) -> None:
    """What the connector does before announcing the disconnection: credentials destroyed."""
    database.connections.update_one(
        {"_id": connection.connection_id},
        {"$set": {"status": "disconnected", "active": False}, "$unset": {"credentials_ciphertext": ""}},
    )


def erased_so_far(database: Database[dict[str, Any]], connection_id: str) -> int:
    return int((database.account_erasures.find_one({"_id": connection_id}) or {}).get("records_erased", 0))


def erased_of(events: Sequence[Any], account_id: str) -> list[Any]:
    return [e for e in events if e.type == "AccountDataErased" and e.value["account_id"] == account_id]


async def test_an_erase_after_an_import_removes_the_account_data_with_a_tombstone_each(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    importers.start()
    connection = connect(mongo_db, stack_secrets, Processor.CHARGEBEE)
    # A neighbour whose id extends this one's: its records sort right beside the erased range.
    neighbour = f"{connection.account_id}2"
    seed_customers(mongo_db, neighbour, 50)
    imports = await kafka_events(topics.IMPORTS)
    import_id = await trigger(producer, connection)
    await imports.wait_for(
        lambda e: e.type == "ImportCompleted" and e.value["import_id"] == import_id,
        timeout_s=IMPORT_TIMEOUT_S,
    )
    await wait_until(lambda: mongo_db[SYNC_STATE_COLLECTION].find_one({"_id": connection.connection_id}))
    before = stored_keys(mongo_db, connection.account_id)
    assert len(before) > 1000
    assert mongo_db.import_pages.count_documents({"import_id": import_id}) > 0
    billing = await kafka_events(list(topics.BILLING_TOPICS))
    connections = await kafka_events(topics.CONNECTIONS)

    disconnected(mongo_db, connection)
    await ask_erase(producer, connection.account_id, connection.connection_id)
    [erased] = await connections.wait_for(
        lambda e: e.type == "AccountDataErased" and e.value["account_id"] == connection.account_id,
        timeout_s=IMPORT_TIMEOUT_S,
    )

    assert erased.value["connection_id"] == connection.connection_id
    assert erased.value["records_erased"] == len(before)
    assert stored_keys(mongo_db, connection.account_id) == set()
    assert mongo_db.customers.count_documents({"account_id": neighbour}) == 50
    assert mongo_db[SYNC_STATE_COLLECTION].find_one({"_id": connection.connection_id}) is None
    assert mongo_db.import_pages.count_documents({"import_id": import_id}) == 0
    await billing.wait_for(
        lambda e: e.value is None and (e.key or "").startswith(f"{connection.account_id}:"),
        count=len(before),
    )
    tombstones = {
        (e.topic, e.key)
        for e in billing.events
        if e.value is None and (e.key or "").startswith(f"{connection.account_id}:")
    }
    assert tombstones == before

    # Asked again (a second DELETE, or the event redelivered): the same announcement, nothing more.
    await ask_erase(producer, connection.account_id, connection.connection_id)
    await connections.wait_for(
        lambda e: e.type == "AccountDataErased" and e.value["account_id"] == connection.account_id, count=2
    )
    again = erased_of(connections.events, connection.account_id)
    assert {e.value["event_id"] for e in again} == {erased.value["event_id"]}
    assert {e.value["records_erased"] for e in again} == {len(before)}
    assert mongo_db.customers.count_documents({"account_id": neighbour}) == 50


async def test_an_importer_killed_mid_erase_finishes_it_exactly_after_a_restart(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    account_id, connection_id = f"acct_{uuid.uuid4().hex[:10]}", f"conn_{uuid.uuid4().hex[:10]}"
    seeded = 40_000
    seed_customers(mongo_db, account_id, seeded)
    [process] = importers.start()
    connections = await kafka_events(topics.CONNECTIONS)

    await ask_erase(producer, account_id, connection_id)
    await wait_until(
        lambda: (
            (mongo_db.account_erasures.find_one({"_id": connection_id}) or {}).get("records_erased", 0) > 0
        ),
        interval_s=0.02,
    )
    process.kill()
    job = mongo_db.account_erasures.find_one({"_id": connection_id})
    assert job is not None
    assert job["status"] == ErasureStatus.ERASING.value
    assert mongo_db.customers.count_documents({"account_id": account_id}) > 0
    process.start()
    [erased] = await connections.wait_for(
        lambda e: e.type == "AccountDataErased" and e.value["account_id"] == account_id,
        timeout_s=IMPORT_TIMEOUT_S,
    )

    assert erased.value["records_erased"] == seeded
    assert mongo_db.customers.count_documents({"account_id": account_id}) == 0


class _RecordingEvents:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish_connection_event(self, event: Event) -> None:
        self.events.append(event)


class _FailingOnce(MongoErasureStore):
    """The real store, failing once between a batch's tombstones and its deletion."""

    def __init__(self, *args: Any, fail_at_batch: int) -> None:
        super().__init__(*args)
        self.batches = 0
        self.fail_at_batch = fail_at_batch
        self.failed_keys: list[str] = []

    async def remove(self, connection_id: str, collection: str, keys: Sequence[str], now: datetime) -> int:
        self.batches += 1
        if self.batches == self.fail_at_batch:
            self.failed_keys = list(keys)
            raise ConnectionError("the store went away")
        return await super().remove(connection_id, collection, keys, now)


@pytest_asyncio.fixture
async def bulk_publisher(kafka_bootstrap: str) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher(kafka_bootstrap, client_id="erase-test")
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()


async def test_a_failure_between_tombstones_and_deletion_resumes_with_an_exact_count(
    mongodb_url: str,
    mongodb_database: str,
    mongo_db: Database[dict[str, Any]],
    bulk_publisher: KafkaPublisher,
    kafka_events: Any,
) -> None:
    account_id, connection_id = f"acct_{uuid.uuid4().hex[:10]}", f"conn_{uuid.uuid4().hex[:10]}"
    seeded = 2_500
    seed_customers(mongo_db, account_id, seeded)
    billing = await kafka_events(topics.BILLING_CUSTOMERS)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        store = _FailingOnce(client, client[mongodb_database], fail_at_batch=2)
        events = _RecordingEvents()
        erasure = AccountErasure(
            store=store, tombstones=bulk_publisher, events=events, clock=utc_now, batch_size=1000
        )
        with pytest.raises(ConnectionError):
            await erase_account(erasure, account_id, connection_id)

        # The batch that failed still stands in the store, its tombstones already out.
        assert mongo_db.customers.count_documents({"account_id": account_id}) == seeded - 1000
        assert mongo_db.customers.count_documents({"_id": {"$in": store.failed_keys}}) == 1000
        assert (mongo_db.account_erasures.find_one({"_id": connection_id}) or {})["records_erased"] == 1000
        assert events.events == []

        job = await erase_account(erasure, account_id, connection_id)
        again = await erase_account(erasure, account_id, connection_id)
    finally:
        await client.close()

    assert job.records_erased == again.records_erased == seeded
    assert mongo_db.customers.count_documents({"account_id": account_id}) == 0
    assert [e.model_dump()["records_erased"] for e in events.events] == [seeded, seeded]
    assert len({e.event_id for e in events.events}) == 1
    await billing.wait_for(lambda e: e.value is None and (e.key or "").startswith(account_id), count=seeded)
    keys = [e.key for e in billing.events if e.value is None and (e.key or "").startswith(account_id)]
    assert set(keys) == {f"{account_id}:stripe:cus_{index:07d}" for index in range(seeded)}
    # The failed batch's tombstones went out twice (before the failure and on resume); no key is missing.
    assert len(keys) == seeded + 1000
