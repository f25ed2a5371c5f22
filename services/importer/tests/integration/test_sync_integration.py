"""Sync after the first import, on the real broker and store, against the fake processors over HTTP:
changes made at the fake (its control API) reach the store and the ``billing.*`` topics through the
importer's polls of the event lists and through webhook events queued on the sync topic."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.events import Processor
from contracts.records import CouponRecord, SubscriptionRecord
from contracts.sync import SYNC_EVENTS_TOPIC, SYNC_STATE_COLLECTION, ProcessorEventReceived
from devstack.events import TopicCollector
from devstack.processes import ManagedProcess
from devstack.settings import StackSettings
from importer.domain.churn import monthly_churn
from importer_integration_kit import (
    Connection,
    FakeProcessors,
    Importers,
    connect,
    imported_and_syncing,
    record,
    wait_until,
)
from pymongo.database import Database
from sandbox.client import SandboxAdmin

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

CHURN_FROM, CHURN_TO = "2016-01", "2035-12"
FAST_SYNC = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
#: A poll reads two pages of two events at most (the default is 50 pages of 100).
CAPPED_SYNC = {**FAST_SYNC, "SYNC_EVENT_PAGES": "2", "SYNC_EVENT_PAGE_SIZE": "2"}
#: Webhooks alone: the poll after the import, then none while the test runs.
WEBHOOKS_ONLY = {"SYNC_INTERVAL_S": "600", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}


@pytest.fixture
def stripe_admin(fake_processors: FakeProcessors) -> Iterator[SandboxAdmin]:
    admin = fake_processors.admin(Processor.STRIPE)
    try:
        yield admin
    finally:
        admin.reset()  # the other tests compare with the fake's initial data


@pytest.fixture
def chargebee_admin(fake_processors: FakeProcessors) -> Iterator[SandboxAdmin]:
    admin = fake_processors.admin(Processor.CHARGEBEE)
    try:
        yield admin
    finally:
        admin.reset()


async def test_stripe_changes_reach_the_store_and_topics_by_polling_and_webhooks(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    stripe_admin: SandboxAdmin,
    stack_secrets: Any,
) -> None:
    database = mongo_db
    importers.start(1, **FAST_SYNC)
    connection = connect(database, stack_secrets, Processor.STRIPE)
    async with TopicCollector(kafka_bootstrap, list(topics.BILLING_TOPICS)) as billing:
        await imported_and_syncing(database, producer, connection)
        customer = fake_processors.served(Processor.STRIPE)["customers"][0]["id"]
        doomed = fake_processors.served(Processor.STRIPE)["customers"][1]["id"]
        live = next(
            s
            for s in fake_processors.served(Processor.STRIPE)["subscriptions"]
            if s["status"] == "active" and s["customer"] not in {customer, doomed}
        )

        stripe_admin.update_object("customers", customer, {"email": "changed@sync.example"})
        created = stripe_admin.create_object("customers", {"email": "new@sync.example"})["object"]["id"]
        stripe_admin.delete_object("customers", doomed)
        stripe_admin.cancel_subscription(live["id"], reason="cancellation_requested")
        coupon = stripe_admin.create_object("coupons", {"percent_off": 15, "duration": "once"})["object"][
            "id"
        ]

        await wait_until(
            lambda: (
                (record(database, "customers", connection, customer) or {}).get("email")
                == "changed@sync.example"
            ),
            timeout_s=60,
        )
        await wait_until(lambda: record(database, "customers", connection, created), timeout_s=60)
        await wait_until(lambda: record(database, "customers", connection, doomed) is None, timeout_s=60)
        await wait_until(lambda: record(database, "cancellations", connection, live["id"]), timeout_s=60)
        await wait_until(lambda: record(database, "coupons", connection, coupon), timeout_s=60)
        assert record(database, "subscriptions", connection, live["id"])["status"] == "canceled"

        doomed_key = f"{connection.account_id}:stripe:{doomed}"
        [tombstone] = await billing.wait_for(
            lambda e: e.topic == topics.BILLING_CUSTOMERS and e.key == doomed_key and e.value is None
        )
        assert tombstone.value is None
        await billing.wait_for(
            lambda e: (
                e.topic == topics.BILLING_CANCELLATIONS
                and e.key == f"{connection.account_id}:stripe:{live['id']}"
                and e.value is not None
            )
        )

        # A webhook's event, delivered twice and late (an older event after a newer change): the
        # object is re-read, so the record ends as the processor has it now.
        stripe_admin.update_object("customers", customer, {"email": "newest@sync.example"})
        stale = ProcessorEventReceived(
            processor=Processor.STRIPE,
            processor_account_id=connection.processor_account_id,
            processor_event_id=f"evt_{uuid.uuid4().hex}",
            event_type="customer.updated",
            created=datetime.fromtimestamp(time.time() - 120, UTC),
            object_type="customer",
            object_id=customer,
        )
        for _ in range(2):
            await producer.send_and_wait(SYNC_EVENTS_TOPIC, stale.model_dump_json().encode(), key=stale.key())
        await wait_until(
            lambda: (
                (record(database, "customers", connection, customer) or {}).get("email")
                == "newest@sync.example"
            ),
            timeout_s=60,
        )


async def test_an_importer_killed_mid_sync_loses_nothing(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    stripe_admin: SandboxAdmin,
    stack_secrets: Any,
) -> None:
    database = mongo_db
    [first] = importers.start(1, **FAST_SYNC)
    connection = connect(database, stack_secrets, Processor.STRIPE)
    await imported_and_syncing(database, producer, connection)
    customers = [c["id"] for c in fake_processors.served(Processor.STRIPE)["customers"][2:12]]

    for index, customer in enumerate(customers[:5]):
        stripe_admin.update_object("customers", customer, {"email": f"before-{index}@sync.example"})
    first.kill()
    for index, customer in enumerate(customers[5:]):
        stripe_admin.update_object("customers", customer, {"email": f"after-{index}@sync.example"})
    importers.start(1, **FAST_SYNC)

    def all_applied() -> bool:
        emails = [(record(database, "customers", connection, c) or {}).get("email") for c in customers]
        return emails == [f"before-{i}@sync.example" for i in range(5)] + [
            f"after-{i}@sync.example" for i in range(5)
        ]

    await wait_until(all_applied, timeout_s=90)


def churn_of_store(database: Database[dict[str, Any]], connection: Connection) -> list[dict[str, Any]]:
    """Monthly churn computed from every subscription stored now (``domain.churn.monthly_churn``)."""
    owner = {"account_id": connection.account_id, "processor": connection.processor.value}
    subscriptions = [SubscriptionRecord.model_validate(d) for d in database.subscriptions.find(owner)]
    coupons = {d["object_id"]: CouponRecord.model_validate(d) for d in database.coupons.find(owner)}
    rows = monthly_churn(subscriptions, coupons, from_month=CHURN_FROM, to_month=CHURN_TO)
    return [row.model_dump() for row in rows]


async def churn_of_api(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await http.get("/metrics/churn", params={"from": CHURN_FROM, "to": CHURN_TO})
    assert answer.status_code == 200
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_chargebee_cancel_and_reactivate_follow_the_site_by_polling(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    chargebee_admin: SandboxAdmin,
    stack_secrets: Any,
    importer_settings: StackSettings,
) -> None:
    database = mongo_db
    [process] = importers.start(1, **FAST_SYNC)
    connection = connect(database, stack_secrets, Processor.CHARGEBEE)
    await imported_and_syncing(database, producer, connection)
    active = next(
        s for s in fake_processors.served(Processor.CHARGEBEE)["subscriptions"] if s["status"] == "active"
    )
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{importers.port_of(process)}/v1/accounts/{connection.account_id}",
        headers={"Authorization": f"Bearer {importer_settings.jwt(connection.account_id)}"},
        timeout=60,
    )
    async with api:
        before = await churn_of_api(api)
        assert before == churn_of_store(database, connection)

        chargebee_admin.cancel_subscription(active["id"])
        await wait_until(lambda: record(database, "cancellations", connection, active["id"]), timeout_s=60)
        # The churn API follows: its answer is the computation over the records as they are now.
        cancelled = await churn_of_api(api)
        assert cancelled == churn_of_store(database, connection)
        assert cancelled != before
        chargebee_admin.reactivate_subscription(active["id"])
        await wait_until(
            lambda: record(database, "cancellations", connection, active["id"]) is None, timeout_s=60
        )
        assert await churn_of_api(api) == churn_of_store(database, connection)
    stored = record(database, "subscriptions", connection, active["id"])
    assert stored["status"] == "active"
    assert json.dumps(stored, default=str)


async def test_a_burst_touching_many_customers_is_read_by_listing_them(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    stripe_admin: SandboxAdmin,
    stack_secrets: Any,
) -> None:
    database = mongo_db
    importers.start(1, **WEBHOOKS_ONLY)
    connection = connect(database, stack_secrets, Processor.STRIPE)
    await imported_and_syncing(database, producer, connection)
    customers = [c["id"] for c in fake_processors.served(Processor.STRIPE)["customers"]]

    # Two changes of every customer (each names the customer after the change's number), then one
    # customer deleted: a webhook's event for each, as the connector queues them.
    touched = stripe_admin.touch_objects("customers", 2 * len(customers), mark="name")["object_ids"]
    doomed = customers[len(customers) // 2]
    stripe_admin.delete_object("customers", doomed)
    stripe_admin.reset_stats()
    events = [(object_id, "customer.updated") for object_id in touched] + [(doomed, "customer.deleted")]
    for object_id, event_type in events:
        event = ProcessorEventReceived(
            processor=Processor.STRIPE,
            processor_account_id=connection.processor_account_id,
            processor_event_id=f"evt_{uuid.uuid4().hex}",
            event_type=event_type,
            created=datetime.now(UTC),
            object_type="customer",
            object_id=object_id,
        )
        await producer.send(SYNC_EVENTS_TOPIC, event.model_dump_json().encode(), key=event.key())
    await producer.flush()
    last_name = {object_id: str(number) for number, object_id in enumerate(touched)}

    def store_equals_fake() -> bool:
        stored = {
            document["object_id"]: document.get("name")
            for document in database.customers.find(
                {"account_id": connection.account_id}, {"object_id": 1, "name": 1}
            )
        }
        return stored == {c: name for c, name in last_name.items() if c != doomed}

    await wait_until(store_equals_fake, timeout_s=120)
    by_endpoint: dict[str, int] = stripe_admin.stats()["by_endpoint"]
    retrieves = sum(n for label, n in by_endpoint.items() if label.startswith("GET /v1/customers/"))
    list_pages = by_endpoint.get("GET /v1/customers", 0)
    # 400 customers are 4 pages: a listing or a few replaced the re-read of each.
    assert list_pages >= 4
    assert retrieves + list_pages < len(customers) // 4, by_endpoint


def polls_logged(process: ManagedProcess) -> list[dict[str, Any]]:
    """The ``sync.polled`` lines the importer process logged."""
    found = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if '"sync.polled"' in line:
            try:
                found.append(json.loads(line[line.index("{") :]))
            except ValueError:
                continue
    return found


async def test_a_stripe_poll_cut_by_its_cap_reads_on_until_no_event_is_lost(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    stripe_admin: SandboxAdmin,
    stack_secrets: Any,
) -> None:
    database = mongo_db
    [process] = importers.start(1, **CAPPED_SYNC)
    connection = connect(database, stack_secrets, Processor.STRIPE)
    await imported_and_syncing(database, producer, connection)

    # Eleven customers changed at once: a poll reads the newest four; the oldest seven were lost
    # before (the cursor moved past them). Each change names its customer after its number.
    touched = stripe_admin.touch_objects("customers", 11, mark="name")
    last_name = {object_id: str(number) for number, object_id in enumerate(touched["object_ids"])}
    changed_at = datetime.fromtimestamp(max(touched["changed_at"]), UTC)

    def all_applied() -> bool:
        return all(
            (record(database, "customers", connection, object_id) or {}).get("name") == name
            for object_id, name in last_name.items()
        )

    await wait_until(all_applied, timeout_s=90)

    def swept_and_caught_up() -> dict[str, Any] | None:
        state = database[SYNC_STATE_COLLECTION].find_one({"_id": connection.connection_id}) or {}
        through = state.get("synced_through")
        done = state.get("sweep") is None and through is not None and through >= changed_at
        return state if done else None

    state = await wait_until(swept_and_caught_up, timeout_s=60)
    assert state["cursor_s"] >= int(changed_at.timestamp())
    # The burst took polls cut by the cap, read on by the next ones.
    assert any(poll.get("sweeping") is True for poll in polls_logged(process))


async def test_a_renamed_stripe_product_renames_its_stored_prices_and_plans(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    stripe_admin: SandboxAdmin,
    stack_secrets: Any,
) -> None:
    database = mongo_db
    importers.start(1, **FAST_SYNC)
    connection = connect(database, stack_secrets, Processor.STRIPE)
    served = fake_processors.served(Processor.STRIPE)
    priced = [raw for resource in ("prices", "plans") for raw in served[resource]]

    def product_of(raw: dict[str, Any]) -> str:
        product = raw["product"]
        return str(product["id"] if isinstance(product, dict) else product)

    product = max({product_of(raw) for raw in priced}, key=lambda p: sum(product_of(r) == p for r in priced))
    nicknames = {raw["id"]: raw.get("nickname") for raw in priced if product_of(raw) == product}

    def stored_names() -> dict[str, Any]:
        owner = {"account_id": connection.account_id, "processor": "stripe", "product_id": product}
        return {d["object_id"]: d.get("name") for d in database.prices.find(owner)}

    async with TopicCollector(kafka_bootstrap, [topics.BILLING_PRICES]) as billing:
        await imported_and_syncing(database, producer, connection)
        assert set(stored_names()) == set(nicknames)

        stripe_admin.update_object("products", product, {"name": "Renamed by sync"})
        await wait_until(lambda: stored_names() == dict.fromkeys(nicknames, "Renamed by sync"), timeout_s=60)
        renamed = {f"{connection.account_id}:stripe:{price_id}" for price_id in nicknames}
        published = await billing.wait_for(
            lambda e: e.key in renamed and (e.value or {}).get("name") == "Renamed by sync",
            count=len(renamed),
        )
        assert {event.key for event in published} == renamed

        # Deleted: its prices stay at Stripe, expanded to no product any more: named by their nickname.
        stripe_admin.delete_object("products", product)
        await wait_until(lambda: stored_names() == nicknames, timeout_s=60)
