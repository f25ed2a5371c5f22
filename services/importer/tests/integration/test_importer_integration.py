"""The importer as processes on the real broker and store, reading the fake processors over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.events import Processor
from contracts.records import RECORD_TYPES, CanonicalRecord, CouponRecord, CustomerRecord, SubscriptionRecord
from devstack.settings import StackSecrets, StackSettings
from importer.adapters.kafka_publisher import KafkaPublisher
from importer.domain.churn import monthly_churn
from importer.domain.lifecycle import CANCELED_STATUSES
from importer.domain.normalize import normalizer_for
from importer.domain.page_requests import PAGE_REQUESTS_TOPIC
from importer.domain.planning import PlannedPage, page_id
from importer.domain.resources import count_key
from importer.domain.source import NormalizationContext, PageQuery, Window
from importer_integration_kit import (
    Connection,
    FakeProcessors,
    Importers,
    connect,
    objects_done,
    trigger,
    wait_until,
)
from pymongo.database import Database

pytestmark = pytest.mark.infra

IMPORT_TIMEOUT_S = 180.0
_RECORD_TYPE = {record_type.collection: record_type for record_type in RECORD_TYPES}


def expected_counts(fake: FakeProcessors, processor: Processor) -> dict[str, int]:
    data = fake.served(processor)
    counts: dict[str, int] = {}
    for resource, objects in data.items():
        key = count_key(processor, resource)
        counts[key] = counts.get(key, 0) + len(objects)
    return counts


def expected_records(fake: FakeProcessors, connection: Connection) -> dict[str, dict[str, CanonicalRecord]]:
    """What the fake serves, normalised: collection → key → record."""
    data = fake.served(connection.processor)
    normalizer = normalizer_for(connection.processor)
    context = NormalizationContext(account_id=connection.account_id)
    records: dict[str, dict[str, CanonicalRecord]] = {}
    for resource, objects in data.items():
        for raw in objects:
            for record in normalizer.normalize(resource, raw, context):
                records.setdefault(record.collection, {})[record.key()] = record
    return records


def canceled_subscriptions(fake: FakeProcessors, processor: Processor) -> int:
    data = fake.served(processor)
    return sum(1 for subscription in data["subscriptions"] if subscription["status"] in CANCELED_STATUSES)


def completed_counts(event: Any) -> dict[str, int]:
    return {key: value["imported"] for key, value in event.value["resources"].items()}


def assert_stored_exactly(
    database: Database[dict[str, Any]], expected: Mapping[str, Mapping[str, CanonicalRecord]]
) -> None:
    for collection, records in expected.items():
        stored = {document["_id"]: document for document in database[collection].find()}
        assert set(stored) == set(records), collection
        for key, record in records.items():
            assert _RECORD_TYPE[collection].model_validate(stored[key]).model_dump() == record.model_dump(), (
                key
            )


async def import_once(
    connection: Connection, producer: AIOKafkaProducer, kafka_events: Any
) -> tuple[str, Any, Any]:
    imports = await kafka_events(topics.IMPORTS)
    import_id = await trigger(producer, connection)
    [completed] = await imports.wait_for(
        lambda e: e.type == "ImportCompleted" and e.value["import_id"] == import_id,
        timeout_s=IMPORT_TIMEOUT_S,
    )
    return import_id, completed, imports


@pytest.mark.parametrize("processor", [Processor.STRIPE, Processor.CHARGEBEE], ids=["stripe", "chargebee"])
async def test_an_import_stores_and_publishes_exactly_what_the_processor_holds(
    processor: Processor,
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    importers.start()
    connection = connect(mongo_db, stack_secrets, processor)
    customers = await kafka_events(topics.BILLING_CUSTOMERS)

    import_id, completed, imports = await import_once(connection, producer, kafka_events)

    assert completed_counts(completed) == expected_counts(fake_processors, processor)
    assert completed.value["past_cancellations"] == canceled_subscriptions(fake_processors, processor) > 0
    expected = expected_records(fake_processors, connection)
    assert_stored_exactly(mongo_db, expected)
    # Every customer went out on its billing topic, keyed account:processor:object.
    await customers.wait_for(
        lambda e: e.key is not None and e.key.startswith(connection.account_id),
        count=len(expected[CustomerRecord.collection]),
    )
    published = {e.key for e in customers.events if e.key and e.key.startswith(connection.account_id)}
    assert published == set(expected[CustomerRecord.collection])
    started = [e for e in imports.events if e.type == "ImportStarted" and e.value["import_id"] == import_id]
    assert len(started) == 1


async def test_the_imports_api_shows_the_import_and_its_results(
    importers: Importers,
    importer_settings: StackSettings,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    [process] = importers.start()
    connection = connect(mongo_db, stack_secrets, Processor.STRIPE)
    import_id, completed, _ = await import_once(connection, producer, kafka_events)
    base = f"http://127.0.0.1:{importers.port_of(process)}/v1/accounts/{connection.account_id}"
    auth = {"Authorization": f"Bearer {importer_settings.jwt(connection.account_id)}"}

    async with httpx.AsyncClient(timeout=30) as http:
        one = await http.get(f"{base}/imports/{import_id}", headers=auth)
        latest = await http.get(f"{base}/imports/latest", headers=auth)
        anonymous = await http.get(f"{base}/imports/latest")
        other = await http.get(
            f"{base}/imports/latest",
            headers={"Authorization": f"Bearer {importer_settings.jwt('acct_other')}"},
        )
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
            page = await http.get(f"{base}/cancellations", headers=auth, params=params)
            assert page.status_code == 200
            pages.extend(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        churn = await http.get(
            f"{base}/metrics/churn", headers=auth, params={"from": "2025-01", "to": "2025-12"}
        )

    assert one.status_code == 200
    body = one.json()
    assert body["import_id"] == import_id
    assert body["status"] == "completed"
    assert body["processor"] == "stripe"
    assert {key: value["imported"] for key, value in body["resources"].items()} == completed_counts(completed)
    assert body["started_at"]
    assert body["finished_at"]
    assert latest.json() == body
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"]
    assert other.status_code == 403
    assert len(pages) == canceled_subscriptions(fake_processors, Processor.STRIPE)
    assert len({item["subscription_id"] for item in pages}) == len(pages)
    moments = [item["canceled_at"] or item["ended_at"] for item in pages]
    assert moments == sorted(moments, reverse=True)
    assert all(item["mrr_lost"]["currency"] and item["mrr_lost"]["amount"] >= 0 for item in pages)
    assert churn.status_code == 200
    months = {row["month"] for row in churn.json()["items"]}
    assert months == {f"2025-{month:02d}" for month in range(1, 13)}
    # The query reads only the churn fields along the primary index: the same figures as every
    # stored field of every subscription of the account.
    owned = {"account_id": connection.account_id, "processor": "stripe"}
    subscriptions = [SubscriptionRecord.model_validate(d) for d in mongo_db.subscriptions.find(owned)]
    coupons = {c.object_id: c for c in map(CouponRecord.model_validate, mongo_db.coupons.find(owned))}
    assert subscriptions
    expected = monthly_churn(subscriptions, coupons, from_month="2025-01", to_month="2025-12")
    assert churn.json()["items"] == [row.model_dump() for row in expected]


async def test_the_bulk_publisher_knows_the_partition_a_fresh_windows_request_lands_on(
    kafka_bootstrap: str, kafka_events: Any
) -> None:
    """What decides whether the process planning a fresh window fetches it ahead (its consumer owns
    that partition): the publisher's answer is where the broker puts the request."""
    requests = await kafka_events(PAGE_REQUESTS_TOPIC)
    import_id = f"imp_{uuid.uuid4().hex[:10]}"
    day = 86_400
    queries = [
        PageQuery("customers", Window(start, start + day), None, 100) for start in range(0, 60 * day, day)
    ]
    pages = [PlannedPage(page_id(import_id, query), import_id, query) for query in queries]
    publisher = KafkaPublisher(kafka_bootstrap, client_id="page-partitions-test")
    await publisher.start()
    try:
        await publisher.publish_pages("acct_partitions", pages)
        expected = {page.page_id: await publisher.request_partition(page) for page in pages}
    finally:
        await publisher.stop()

    landed = await requests.wait_for(
        lambda e: e.key is not None and e.key.startswith(f"{import_id}:"), count=len(pages)
    )
    assert {event.key: event.partition for event in landed} == expected
    assert len(set(expected.values())) > 1  # spread, as fresh windows are


async def test_two_importers_share_one_import(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    first, second = importers.start(2)
    connection = connect(mongo_db, stack_secrets, Processor.STRIPE)

    import_id, completed, imports = await import_once(connection, producer, kafka_events)

    assert completed_counts(completed) == expected_counts(fake_processors, Processor.STRIPE)
    assert_stored_exactly(mongo_db, expected_records(fake_processors, connection))
    assert importers.pages_handled(first, import_id) > 0
    assert importers.pages_handled(second, import_id) > 0
    await asyncio.sleep(1.0)
    outcomes = [
        e for e in imports.events if e.type == "ImportCompleted" and e.value["import_id"] == import_id
    ]
    assert len(outcomes) == 1


@pytest.mark.parametrize("processor", [Processor.STRIPE, Processor.CHARGEBEE], ids=["stripe", "chargebee"])
async def test_objects_deleted_mid_import_neither_stop_it_nor_hide_the_others(
    processor: Processor,
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    held = fake_processors.served(processor)  # before any deletion
    total = sum(len(objects) for objects in held.values())
    # Every fifth customer and invoice, spread over the whole time line: some are imported before
    # they go, the others must simply be missing, and no cursor may lose its place.
    deleted = {
        resource: {str(o["id"]) for o in held[resource][::5]} for resource in ("customers", "invoices")
    }
    admin = fake_processors.admin(processor)
    admin.update_settings(latency_s=0.3)  # slow pages and one chain per resource: surely under way
    try:
        importers.start(
            STRIPE_TEST_CHAINS_PER_RESOURCE="1",
            STRIPE_TEST_IMPORT_CHAINS="1",
            CHARGEBEE_CHAINS_PER_RESOURCE="1",
        )
        connection = connect(mongo_db, stack_secrets, processor)
        imports = await kafka_events(topics.IMPORTS)
        import_id = await trigger(producer, connection)
        await wait_until(lambda: objects_done(mongo_db, import_id) > total // 4, timeout_s=IMPORT_TIMEOUT_S)
        for resource, ids in deleted.items():
            admin.delete(resource, sorted(ids))
        [completed] = await imports.wait_for(
            lambda e: e.type in {"ImportCompleted", "ImportFailed"} and e.value["import_id"] == import_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
    finally:
        admin.reset()  # the objects come back for the other tests

    assert completed.type == "ImportCompleted"
    counts = completed_counts(completed)
    missing = 0
    for resource, ids in deleted.items():
        held_ids = {str(o["id"]) for o in held[resource]}
        stored = {
            document["object_id"]
            for document in mongo_db[resource].find({"account_id": connection.account_id}, {"object_id": 1})
        }
        assert held_ids - ids <= stored <= held_ids, resource
        assert counts[count_key(processor, resource)] == len(stored), resource
        missing += len(held_ids - stored)
    # The deletions landed mid-import: objects not yet read when they went were not imported.
    assert missing > 0


async def test_an_importer_killed_mid_import_finishes_it_exactly_after_a_restart(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    total = sum(expected_counts(fake_processors, Processor.STRIPE).values())
    # Slow pages and one chain per resource, so that the import is surely under way when it dies.
    fake_processors.set_latency(0.4)
    try:
        [process] = importers.start(STRIPE_TEST_CHAINS_PER_RESOURCE="1", STRIPE_TEST_IMPORT_CHAINS="1")
        connection = connect(mongo_db, stack_secrets, Processor.STRIPE)
        imports = await kafka_events(topics.IMPORTS)
        import_id = await trigger(producer, connection)
        await wait_until(
            lambda: objects_done(mongo_db, import_id) > total // 4,
            timeout_s=IMPORT_TIMEOUT_S,
            interval_s=0.05,
        )
        process.kill()
        assert (mongo_db.imports.find_one({"_id": import_id}) or {}).get("status") == "running"
        process.start()
        [completed] = await imports.wait_for(
            lambda e: e.type == "ImportCompleted" and e.value["import_id"] == import_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
    finally:
        fake_processors.set_latency(None)

    assert completed_counts(completed) == expected_counts(fake_processors, Processor.STRIPE)
    assert completed.value["past_cancellations"] == canceled_subscriptions(fake_processors, Processor.STRIPE)
    assert_stored_exactly(mongo_db, expected_records(fake_processors, connection))
    await asyncio.sleep(2.0)
    outcomes = [
        e for e in imports.events if e.type == "ImportCompleted" and e.value["import_id"] == import_id
    ]
    assert len({e.value["event_id"] for e in outcomes}) == 1
    assert mongo_db.import_pages.count_documents({"import_id": import_id, "status": "pending"}) == 0


async def test_a_poison_page_request_is_dead_lettered_without_blocking_its_partition(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    importers.start(PAGE_MAX_ATTEMPTS="2", PAGE_RETRY_BASE_DELAY_S="0.05")
    dead_letters = await kafka_events(topics.dead_letter_topic(PAGE_REQUESTS_TOPIC))
    partitions = await producer.partitions_for(PAGE_REQUESTS_TOPIC)
    for partition in sorted(partitions):
        await producer.send_and_wait(
            PAGE_REQUESTS_TOPIC, b"{not a page request", key=b"poison", partition=partition
        )
    connection = connect(mongo_db, stack_secrets, Processor.STRIPE)

    _, completed, _ = await import_once(connection, producer, kafka_events)

    assert completed_counts(completed) == expected_counts(fake_processors, Processor.STRIPE)
    letters = await dead_letters.wait_for(lambda e: e.key == "poison", count=len(partitions))
    assert {letter.partition for letter in letters} <= set(partitions)
    assert {letter.headers["x-dlq-original-partition"].decode() for letter in letters} == {
        str(partition) for partition in partitions
    }
    assert all(letter.headers["x-dlq-original-topic"] == PAGE_REQUESTS_TOPIC.encode() for letter in letters)


async def test_a_page_failing_past_its_retries_fails_the_import_once(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    importers.start(PAGE_MAX_ATTEMPTS="2", PAGE_RETRY_BASE_DELAY_S="0.05", PAGE_RETRY_MAX_DELAY_S="0.1")
    fake_processors.fault(path_prefix="/v1/coupons", status=500, count=1000)
    try:
        connection = connect(mongo_db, stack_secrets, Processor.STRIPE)
        imports = await kafka_events(topics.IMPORTS)
        dead_letters = await kafka_events(topics.dead_letter_topic(PAGE_REQUESTS_TOPIC))
        import_id = await trigger(producer, connection)
        [failed] = await imports.wait_for(
            lambda e: e.type == "ImportFailed" and e.value["import_id"] == import_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
    finally:
        fake_processors.clear_faults()

    assert failed.value["code"] == "processor_unavailable"
    assert "coupons" in failed.value["message"]
    await dead_letters.wait_for(lambda e: import_id in (e.value or {}).get("import_id", ""))
    await asyncio.sleep(2.0)
    assert [e.type for e in imports.events if (e.value or {}).get("import_id") == import_id].count(
        "ImportFailed"
    ) == 1
    stored = mongo_db.imports.find_one({"_id": import_id}) or {}
    assert stored["error"]["code"] == "processor_unavailable"
