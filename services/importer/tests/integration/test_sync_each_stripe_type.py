"""Sync of every Stripe object type the import copies, on the real broker and store, against the fake
Stripe over HTTP: each change is made through the fake's control API (which records Stripe's events),
reaches the importer through its poll of the account's event list, and is checked twice: the stored
record, and the record (or the tombstone) read back from its ``billing.*`` topic, equal to the store.

One import and one running sync serve the whole module (each test changes objects of its own);
customers and a cancellation by ``DELETE`` are covered in ``test_sync_integration.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.events import Processor
from contracts.records import (
    CancellationRecord,
    CanonicalRecord,
    CouponRecord,
    InvoiceRecord,
    PriceRecord,
    SubscriptionRecord,
)
from devstack.events import CollectedEvent, TopicCollector
from devstack.settings import StackSecrets, StackSettings
from importer_integration_kit import (
    Connection,
    FakeProcessors,
    Importers,
    connect,
    imported_and_syncing,
    record,
    wait_until,
)
from pymongo import MongoClient
from pymongo.database import Database
from sandbox.client import SandboxAdmin

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

#: The account's event list is read every second.
FAST_SYNC = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
WAIT_S = 60.0


@dataclass(frozen=True)
class SyncedStripe:
    """A Stripe connection imported and kept in sync by one importer; its ``billing.*`` topics read
    from when its sync went live."""

    database: Database[dict[str, Any]]
    connection: Connection
    admin: SandboxAdmin
    billing: TopicCollector
    stripe: dict[str, list[dict[str, Any]]]
    """The fake's objects as generated, per resource (the initial data)."""

    def key(self, object_id: str) -> str:
        return f"{self.connection.account_id}:stripe:{object_id}"

    def stored(self, collection: str, object_id: str) -> Any:
        return record(self.database, collection, self.connection, object_id)

    async def stored_when(self, collection: str, object_id: str, check: Callable[[Any], bool]) -> Any:
        """The stored record once ``check`` holds for it."""
        return await wait_until(
            lambda: (found := self.stored(collection, object_id)) is not None and check(found) and found,
            timeout_s=WAIT_S,
        )

    async def published(
        self, model: type[CanonicalRecord], object_id: str, check: Callable[[Any], bool]
    ) -> Any:
        """The last record of the object on its topic once one satisfies ``check`` (a JSON object)."""
        events = await self.billing.wait_for(
            lambda e: (
                e.topic == model.topic
                and e.key == self.key(object_id)
                and e.value is not None
                and check(e.value)
            ),
            timeout_s=WAIT_S,
        )
        return events[-1].value

    async def tombstone(self, topic: str, object_id: str) -> CollectedEvent:
        [found] = await self.billing.wait_for(
            lambda e: e.topic == topic and e.key == self.key(object_id) and e.value is None, timeout_s=WAIT_S
        )
        return found

    def messages(self, topic: str, object_id: str) -> list[CollectedEvent]:
        return [e for e in self.billing.events if e.topic == topic and e.key == self.key(object_id)]


def same_record(model: type[CanonicalRecord], published: Any, stored: Any) -> bool:
    """The record on the topic is the stored one (the store's own fields aside)."""
    return model.model_validate(published) == model.model_validate(stored)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def synced(
    kafka_bootstrap: str,
    mongodb_url: str,
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    devstack_log_dir: Path,
) -> AsyncIterator[SyncedStripe]:
    name = f"t_sync_each_stripe_type_{uuid.uuid4().hex[:8]}"
    settings = StackSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=name,
        smtp_port=1025,
        secrets=stack_secrets,
        sandbox=fake_processors.endpoints,
    )
    log_dir = devstack_log_dir / "importer-integration" / "sync-each-stripe-type"
    log_dir.mkdir(parents=True, exist_ok=True)
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongodb_url, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    importers = Importers(settings, log_dir)
    admin = fake_processors.admin(Processor.STRIPE)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    billing = TopicCollector(kafka_bootstrap, list(topics.BILLING_TOPICS))
    try:
        await producer.start()
        database = client[name]
        importers.start(1, **FAST_SYNC)
        connection = connect(database, stack_secrets, Processor.STRIPE)
        await imported_and_syncing(database, producer, connection)
        await billing.start()
        yield SyncedStripe(database, connection, admin, billing, fake_processors.dataset.stripe)
    finally:
        importers.stop()
        await billing.stop()
        await producer.stop()
        admin.reset()  # the other tests compare with the fake's initial data
        client.drop_database(name)
        client.close()


async def test_an_invoice_paid_after_a_failed_attempt_and_a_new_one_follow_the_fake(
    synced: SyncedStripe,
) -> None:
    open_invoice = next(i for i in synced.stripe["invoices"] if i["status"] == "open")
    before = synced.stored("invoices", open_invoice["id"])
    assert (before["status"], before["amount_paid"], before["paid_at"]) == ("open", 0, None)

    # invoice.updated + invoice.payment_failed, then invoice.updated + invoice.paid + .payment_succeeded
    paid = synced.admin.pay_invoice(open_invoice["id"], failed_attempts=1)["object"]
    customer = synced.stripe["customers"][3]["id"]
    created = synced.admin.create_object("invoices", {"customer": customer, "amount_due": 4321})["object"]

    stored = await synced.stored_when("invoices", paid["id"], lambda r: r["status"] == "paid")
    assert stored["amount_paid"] == paid["amount_due"] == stored["amount_due"]
    assert stored["attempt_count"] == paid["attempt_count"] == before["attempt_count"] + 2
    assert int(stored["paid_at"].timestamp()) == paid["status_transitions"]["paid_at"]
    published = await synced.published(InvoiceRecord, paid["id"], lambda v: v["status"] == "paid")
    assert same_record(InvoiceRecord, published, stored)

    new = await synced.stored_when("invoices", created["id"], lambda r: True)
    assert (new["customer_id"], new["status"], new["amount_due"], new["amount_paid"]) == (
        customer,
        "open",
        4321,
        0,
    )
    assert same_record(
        InvoiceRecord, await synced.published(InvoiceRecord, created["id"], lambda v: True), new
    )


async def test_a_changed_price_and_a_new_one_follow_the_fake(synced: SyncedStripe) -> None:
    price = synced.stripe["prices"][0]
    assert synced.stored("prices", price["id"])["active"] is True
    synced.admin.update_object("prices", price["id"], {"active": False, "unit_amount": 12_345})
    product = synced.stripe["products"][0]["id"]
    created = synced.admin.create_object(
        "prices", {"product": product, "unit_amount": 777, "interval": "year"}
    )["object"]

    changed = await synced.stored_when("prices", price["id"], lambda r: r["active"] is False)
    assert changed["unit_amount"] == 12_345
    published = await synced.published(PriceRecord, price["id"], lambda v: v["active"] is False)
    assert same_record(PriceRecord, published, changed)

    new = await synced.stored_when("prices", created["id"], lambda r: True)
    assert (new["product_id"], new["unit_amount"], new["interval"], new["recurring"]) == (
        product,
        777,
        "year",
        True,
    )
    assert same_record(PriceRecord, await synced.published(PriceRecord, created["id"], lambda v: True), new)


async def test_a_new_plan_then_changed_follows_the_fake(synced: SyncedStripe) -> None:
    product = synced.stripe["products"][1]["id"]
    plan = synced.admin.create_object("plans", {"product": product, "amount": 555, "interval": "week"})[
        "object"
    ]

    new = await synced.stored_when("prices", plan["id"], lambda r: True)
    assert (new["product_id"], new["unit_amount"], new["interval"], new["active"]) == (
        product,
        555,
        "week",
        True,
    )
    assert same_record(PriceRecord, await synced.published(PriceRecord, plan["id"], lambda v: True), new)

    synced.admin.update_object("plans", plan["id"], {"amount": 666, "active": False})
    changed = await synced.stored_when("prices", plan["id"], lambda r: r["active"] is False)
    assert changed["unit_amount"] == 666
    published = await synced.published(PriceRecord, plan["id"], lambda v: v["active"] is False)
    assert same_record(PriceRecord, published, changed)


async def test_a_renamed_coupon_follows_the_fake(synced: SyncedStripe) -> None:
    coupon = synced.stripe["coupons"][0]
    name = f"renamed {uuid.uuid4().hex[:6]}"
    synced.admin.update_object("coupons", coupon["id"], {"name": name})

    stored = await synced.stored_when("coupons", coupon["id"], lambda r: r["name"] == name)
    assert stored["percent_off"] == coupon["percent_off"]
    published = await synced.published(CouponRecord, coupon["id"], lambda v: v["name"] == name)
    assert same_record(CouponRecord, published, stored)


def live_subscriptions(synced: SyncedStripe) -> list[dict[str, Any]]:
    return [
        s
        for s in synced.stripe["subscriptions"]
        if s["status"] == "active" and not s["cancel_at_period_end"] and s.get("cancel_at") is None
    ]


def canceled_subscriptions(synced: SyncedStripe) -> list[dict[str, Any]]:
    return [s for s in synced.stripe["subscriptions"] if s["status"] == "canceled"]


async def test_a_scheduled_cancellation_then_undone_follows_the_fake_and_is_no_cancellation(
    synced: SyncedStripe,
) -> None:
    subscription = live_subscriptions(synced)[0]["id"]
    synced.admin.cancel_subscription(subscription, at_period_end=True, reason="cancellation_requested")

    scheduled = await synced.stored_when("subscriptions", subscription, lambda r: r["cancel_at_period_end"])
    assert scheduled["status"] == "active"
    published = await synced.published(SubscriptionRecord, subscription, lambda v: v["cancel_at_period_end"])
    assert same_record(SubscriptionRecord, published, scheduled)

    synced.admin.reactivate_subscription(subscription)
    undone = await synced.stored_when("subscriptions", subscription, lambda r: not r["cancel_at_period_end"])
    assert (undone["status"], undone["canceled_at"], undone["cancel_reason"]) == ("active", None, None)
    published = await synced.published(
        SubscriptionRecord, subscription, lambda v: v["cancel_at_period_end"] is False
    )
    assert same_record(SubscriptionRecord, published, undone)
    # Only scheduled, never a past cancellation: none stored, none published.
    assert synced.stored("cancellations", subscription) is None
    assert synced.messages(topics.BILLING_CANCELLATIONS, subscription) == []


async def test_a_reactivated_subscription_loses_its_cancellation_with_a_tombstone(
    synced: SyncedStripe,
) -> None:
    # Stripe itself cannot revive a canceled subscription; the fake's control API can set it active,
    # which is what a processor reactivating one looks like to sync (SPEC "Keeping data fresh").
    subscription = canceled_subscriptions(synced)[0]["id"]
    assert synced.stored("cancellations", subscription) is not None
    synced.admin.update_object(
        "subscriptions",
        subscription,
        {
            "status": "active",
            "canceled_at": None,
            "ended_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        },
    )

    await wait_until(lambda: synced.stored("cancellations", subscription) is None, timeout_s=WAIT_S)
    await synced.tombstone(topics.BILLING_CANCELLATIONS, subscription)
    stored = synced.stored("subscriptions", subscription)
    assert (stored["status"], stored["ended_at"]) == ("active", None)
    published = await synced.published(SubscriptionRecord, subscription, lambda v: v["status"] == "active")
    assert same_record(SubscriptionRecord, published, stored)


async def test_a_new_subscription_then_cancelled_becomes_a_cancellation(synced: SyncedStripe) -> None:
    customer = synced.stripe["customers"][7]["id"]
    price = next(p for p in synced.stripe["prices"] if p.get("recurring") and p["active"])
    created = synced.admin.create_object("subscriptions", {"customer": customer, "price": price["id"]})[
        "object"
    ]

    new = await synced.stored_when("subscriptions", created["id"], lambda r: True)
    assert (new["customer_id"], new["status"], new["items"][0]["price_id"]) == (
        customer,
        "active",
        price["id"],
    )
    assert new["mrr"] > 0
    assert same_record(
        SubscriptionRecord, await synced.published(SubscriptionRecord, created["id"], lambda v: True), new
    )

    synced.admin.cancel_subscription(created["id"], reason="cancellation_requested", feedback="too_expensive")
    cancellation = await synced.stored_when("cancellations", created["id"], lambda r: True)
    assert (cancellation["customer_id"], cancellation["feedback"]) == (customer, "too_expensive")
    assert cancellation["mrr_lost"]["amount"] == new["mrr"]
    published = await synced.published(CancellationRecord, created["id"], lambda v: True)
    assert same_record(CancellationRecord, published, cancellation)


@pytest.mark.parametrize(
    ("resource", "collection", "model"),
    [
        ("coupons", "coupons", CouponRecord),
        ("plans", "prices", PriceRecord),
        ("invoices", "invoices", InvoiceRecord),
        ("subscriptions", "subscriptions", SubscriptionRecord),
    ],
)
async def test_a_deleted_object_leaves_the_store_with_a_tombstone_on_its_topic(
    synced: SyncedStripe, resource: str, collection: str, model: type[CanonicalRecord]
) -> None:
    if resource == "coupons":
        object_id = synced.stripe["coupons"][-1]["id"]
    elif resource == "plans":  # one of its own: every price of the sample data is a plan of the same id
        product = synced.stripe["products"][2]["id"]
        object_id = synced.admin.create_object("plans", {"product": product})["object"]["id"]
        await synced.stored_when(collection, object_id, lambda r: True)
    elif resource == "invoices":
        object_id = next(i for i in synced.stripe["invoices"] if i["status"] == "void")["id"]
    else:  # a canceled one: its past cancellation goes with it
        object_id = canceled_subscriptions(synced)[1]["id"]
        assert synced.stored("cancellations", object_id) is not None
    assert synced.stored(collection, object_id) is not None

    # Gone at the fake (`<object>.deleted`): retrieving it answers `deleted: true`, or 404.
    assert synced.admin.delete(resource, [object_id])["deleted"] == [object_id]

    await wait_until(lambda: synced.stored(collection, object_id) is None, timeout_s=WAIT_S)
    await synced.tombstone(model.topic, object_id)
    if resource == "subscriptions":
        await wait_until(lambda: synced.stored("cancellations", object_id) is None, timeout_s=WAIT_S)
        await synced.tombstone(topics.BILLING_CANCELLATIONS, object_id)


async def test_a_deleted_plan_whose_price_stays_keeps_its_record(synced: SyncedStripe) -> None:
    # Every recurring price of the sample data is also a plan of the same id, stored as one record.
    # Deleting the plan leaves the price at the fake (as Stripe keeps prices), so the record stays.
    plans = {plan["id"] for plan in synced.stripe["plans"]}
    price = next(
        p for p in synced.stripe["prices"] if p["id"] in plans and p["id"] != synced.stripe["plans"][0]["id"]
    )
    before = synced.stored("prices", price["id"])
    assert before is not None

    assert synced.admin.delete("plans", [price["id"]])["deleted"] == [price["id"]]

    # The deletion applied: the record gone (the plan re-read alone) or read again from the price.
    outcome = await wait_until(
        lambda: (
            "gone"
            if (found := synced.stored("prices", price["id"])) is None
            else "read again"
            if found.get("sync_version", 0) > before.get("sync_version", 0)
            else None
        ),
        timeout_s=WAIT_S,
    )
    assert outcome == "read again", "the deleted plan took its price's record with it"
    kept = synced.stored("prices", price["id"])
    assert (kept["unit_amount"], kept["interval"], kept["product_id"]) == (
        before["unit_amount"],
        before["interval"],
        before["product_id"],
    )
    assert [e for e in synced.messages(PriceRecord.topic, price["id"]) if e.value is None] == []
