"""Sync of every Chargebee object type the import copies, on the real broker and store, against the
fake Chargebee over HTTP: objects created, changed and deleted at the site (its control API, which
records Chargebee's events and sends its webhooks) end in the store exactly as the site holds them
now, and on their ``billing.*`` topic (the record, or a tombstone once deleted). Through the poll of
the site's event list (Product Catalog 2.0 and 1.0), and through webhooks taken by the connector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.events import Mode, Processor
from contracts.records import CancellationRecord, PriceRecord
from devstack.events import TopicCollector
from devstack.settings import StackSecrets, StackSettings
from devstack.stack import ServiceStack
from importer_integration_kit import Connection, FakeProcessors, Importers
from pymongo.database import Database
from sandbox.client import SandboxAdmin
from sync_changes_kit import (
    CATALOG_1,
    CATALOG_2,
    FAST_SYNC,
    WEBHOOKS_ONLY,
    Processors,
    connect_site,
    imported_and_syncing,
    store_and_topic_follow,
    stored,
    sync_state,
    until_live,
)

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def chargebee_admin(fake_processors: FakeProcessors) -> Iterator[SandboxAdmin]:
    admin = fake_processors.admin(Processor.CHARGEBEE)
    try:
        yield admin
    finally:
        admin.remove_webhooks()
        admin.reset()  # the other tests compare with the fake's initial data


async def test_each_catalog_2_type_follows_the_site_by_polling(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    chargebee_admin: SandboxAdmin,
    stack_secrets: StackSecrets,
) -> None:
    database, admin = mongo_db, chargebee_admin
    importers.start(1, **FAST_SYNC)
    connection = connect_site(database, stack_secrets, CATALOG_2)
    processors = Processors(fake_processors, CATALOG_2)
    async with TopicCollector(kafka_bootstrap, list(topics.BILLING_TOPICS)) as billing:
        await imported_and_syncing(database, producer, connection)
        subscriptions = processors.listed("subscriptions")
        owners = {str(s["customer_id"]) for s in subscriptions}
        active = next(s for s in subscriptions if s["status"] == "active")
        doomed = next(c for c in owners if c != active["customer_id"])
        doomed_subscriptions = [s for s in subscriptions if s["customer_id"] == doomed]
        changed = next(
            str(c["id"])
            for c in processors.listed("customers")
            if c["id"] not in {doomed, active["customer_id"]}
        )
        invoices = [i for i in processors.listed("invoices") if i["customer_id"] != doomed]
        due = next(str(i["id"]) for i in invoices if i["status"] in {"payment_due", "not_paid"})
        doomed_invoice = next(str(i["id"]) for i in invoices if i["status"] == "paid")
        coupon, doomed_coupon = (str(c["id"]) for c in processors.listed("coupons")[:2])
        prices = processors.listed("item_prices")
        used = {
            str(entry["item_price_id"]) for s in subscriptions for entry in s.get("subscription_items", [])
        }
        price = next(str(p["id"]) for p in prices if p["id"] in used)
        doomed_price = next(str(p["id"]) for p in prices if p["id"] not in used)
        item = str(processors.listed("items")[0]["id"])

        # Every type created, changed and deleted at the site, all at once.
        admin.update_object("customers", changed, {"email": "changed@sync.example", "first_name": "Changed"})
        created = admin.create_object("customers", {"email": "new@sync.example", "first_name": "New"})
        admin.delete_object("customers", doomed)  # its subscriptions are deleted first
        admin.cancel_subscription(active["id"], reason="not_paid")
        new_invoice = admin.create_object("invoices", {"customer_id": changed, "total": 4_200})
        admin.pay_invoice(due)
        admin.delete_object("invoices", doomed_invoice)
        new_coupon = admin.create_object("coupons", {"name": "Sync fifteen", "discount_percentage": 15.0})
        admin.update_object("coupons", coupon, {"name": "Renamed coupon", "status": "archived"})
        admin.delete_object("coupons", doomed_coupon)
        new_item = admin.create_object("items", {"name": "Sync item"})["object"]["id"]
        admin.update_object("items", item, {"name": "Renamed item"})
        admin.delete_object("items", admin.create_object("items", {"name": "Gone item"})["object"]["id"])
        new_price = admin.create_object(
            "item_prices", {"item_id": new_item, "name": "Sync price", "price": 4_900}
        )["object"]["id"]
        admin.update_object("item_prices", price, {"price": 12_345, "external_name": "Repriced"})
        admin.delete_object("item_prices", doomed_price)

        def follows(resource: str, object_id: str, *, was_cancelled: bool = False) -> Any:
            return store_and_topic_follow(
                database, billing, processors, connection, resource, object_id, was_cancelled=was_cancelled
            )

        for resource, object_id in [
            ("customers", changed),
            ("customers", created["object"]["id"]),
            ("customers", doomed),
            ("invoices", new_invoice["object"]["id"]),
            ("invoices", due),
            ("invoices", doomed_invoice),
            ("coupons", new_coupon["object"]["id"]),
            ("coupons", coupon),
            ("coupons", doomed_coupon),
            ("item_prices", new_price),
            ("item_prices", price),
            ("item_prices", doomed_price),
        ]:
            await follows(resource, object_id)
        assert stored(database, "customers", connection, doomed) is None
        assert stored(database, "invoices", connection, due)["status"] == "paid"  # type: ignore[index]
        assert stored(database, "coupons", connection, coupon)["valid"] is False  # type: ignore[index]
        # Items have no record of their own (their events are read past): their prices name them.
        assert (
            PriceRecord.model_validate(stored(database, "prices", connection, new_price)).product_id
            == new_item
        )
        assert "items" not in database.list_collection_names()
        for subscription in doomed_subscriptions:
            messages = await follows(
                "subscriptions", str(subscription["id"]), was_cancelled=subscription["status"] == "cancelled"
            )
            assert all(message.value is None for message in messages)

        # A cancellation is stored and published; the reactivation removes it with a tombstone.
        [_, cancellation] = await follows("subscriptions", active["id"])
        assert cancellation.topic == topics.BILLING_CANCELLATIONS
        assert CancellationRecord.model_validate(cancellation.value).subscription_id == active["id"]
        admin.reactivate_subscription(active["id"])
        [subscription, tombstone] = await follows("subscriptions", active["id"], was_cancelled=True)
        assert subscription.value["status"] == "active"
        assert (tombstone.topic, tombstone.value) == (topics.BILLING_CANCELLATIONS, None)
        assert stored(database, "cancellations", connection, active["id"]) is None
    assert sync_state(database, connection)["status"] == "live"


async def test_plans_and_addons_follow_a_catalog_1_site_by_polling(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    chargebee_admin: SandboxAdmin,
    stack_secrets: StackSecrets,
) -> None:
    database, admin = mongo_db, chargebee_admin
    importers.start(1, **FAST_SYNC)
    connection = connect_site(database, stack_secrets, CATALOG_1)
    processors = Processors(fake_processors, CATALOG_1)
    async with TopicCollector(kafka_bootstrap, list(topics.BILLING_TOPICS)) as billing:
        await imported_and_syncing(database, producer, connection)
        plans, addons = processors.listed("plans"), processors.listed("addons")
        assert len(plans) >= 2
        assert len(addons) >= 2
        site = CATALOG_1.name
        new_plan = admin.create_object("plans", {"name": "Sync plan", "price": 2_900}, site=site)
        admin.update_object("plans", plans[0]["id"], {"price": 3_100, "name": "Repriced plan"}, site=site)
        admin.delete_object("plans", plans[1]["id"], site=site)
        new_addon = admin.create_object("addons", {"name": "Sync addon", "price": 500}, site=site)
        admin.update_object("addons", addons[0]["id"], {"status": "archived"}, site=site)
        admin.delete_object("addons", addons[1]["id"], site=site)

        for resource, object_id in [
            ("plans", new_plan["object"]["id"]),
            ("plans", plans[0]["id"]),
            ("plans", plans[1]["id"]),
            ("addons", new_addon["object"]["id"]),
            ("addons", addons[0]["id"]),
            ("addons", addons[1]["id"]),
        ]:
            await store_and_topic_follow(database, billing, processors, connection, resource, object_id)
        assert stored(database, "prices", connection, plans[0]["id"])["unit_amount"] == 3_100  # type: ignore[index]
        assert stored(database, "prices", connection, addons[0]["id"])["active"] is False  # type: ignore[index]
        assert stored(database, "prices", connection, plans[1]["id"]) is None


async def test_changes_of_each_type_reach_the_store_and_topics_through_chargebee_webhooks(
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    kafka_bootstrap: str,
    chargebee_admin: SandboxAdmin,
    importer_settings: StackSettings,
    devstack_log_dir: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Connected through the connector, whose webhook endpoint the site then posts its events to (HTTP
    Basic with the credentials the connect call showed); no poll runs while the changes are made."""
    database, admin, site = mongo_db, chargebee_admin, CATALOG_1
    importers.start(1, **WEBHOOKS_ONLY)
    connector = ServiceStack(importer_settings, devstack_log_dir / "importer-integration" / request.node.name)
    connector.start(["connector"])
    processors = Processors(fake_processors, site)
    try:
        account_id = f"acct_{uuid.uuid4().hex[:10]}"
        async with httpx.AsyncClient(base_url=connector.url("connector"), timeout=30) as http:
            answer = await http.post(
                f"/v1/accounts/{account_id}/connections/chargebee",
                json={"site": site.name, "api_key": site.key, "contact_email": "owner@example.com"},
                headers={"Authorization": f"Bearer {importer_settings.jwt(account_id)}"},
            )
        assert answer.status_code == 201, answer.text
        connected = answer.json()
        connection = Connection(
            account_id, connected["connection_id"], Processor.CHARGEBEE, Mode.TEST, site.name
        )
        webhook = connected["webhook"]
        endpoint = admin.add_webhook(
            webhook["url"], username=webhook["username"], password=webhook["password"], scopes=[site.name]
        )
        async with TopicCollector(kafka_bootstrap, list(topics.BILLING_TOPICS)) as billing:
            await until_live(database, connection, connected["import_id"])
            polled_through = sync_state(database, connection)["synced_through"]
            customers = processors.listed("customers")
            subscriptions = processors.listed("subscriptions")
            active = next(s for s in subscriptions if s["status"] == "active")
            due = next(i for i in processors.listed("invoices") if i["status"] in {"payment_due", "not_paid"})
            kept = {active["customer_id"], due["customer_id"]}
            doomed = next(str(c["id"]) for c in customers if c["id"] not in kept)
            changed = next(str(c["id"]) for c in customers if c["id"] not in {doomed, *kept})
            plan, addon = processors.listed("plans")[0], processors.listed("addons")[0]
            coupon = str(processors.listed("coupons")[0]["id"])

            admin.update_object("customers", changed, {"email": "hooked@sync.example"}, site=site.name)
            created = admin.create_object("customers", {"email": "new-hook@sync.example"}, site=site.name)
            admin.delete_object("customers", doomed, site=site.name)
            admin.cancel_subscription(active["id"], site=site.name)
            new_invoice = admin.create_object(
                "invoices", {"customer_id": changed, "total": 7_700}, site=site.name
            )
            admin.pay_invoice(due["id"], site=site.name)
            admin.delete_object("coupons", coupon, site=site.name)
            admin.update_object("plans", plan["id"], {"price": 9_900}, site=site.name)
            admin.update_object("addons", addon["id"], {"name": "Renamed addon"}, site=site.name)

            for resource, object_id in [
                ("customers", changed),
                ("customers", created["object"]["id"]),
                ("customers", doomed),
                ("subscriptions", active["id"]),
                ("invoices", new_invoice["object"]["id"]),
                ("invoices", due["id"]),
                ("coupons", coupon),
                ("plans", plan["id"]),
                ("addons", addon["id"]),
            ]:
                await store_and_topic_follow(database, billing, processors, connection, resource, object_id)
            assert stored(database, "cancellations", connection, active["id"]) is not None
            # Each change came through the connector's endpoint; no poll ran meanwhile.
            stats = admin.webhook(endpoint["id"])["stats"]
            assert stats["delivered"] >= 9
            assert sync_state(database, connection)["synced_through"] == polled_through
    finally:
        connector.stop()
