"""Stripe webhooks that arrive twice, out of order, never, or badly signed, end to end: the fake Stripe
signs and sends its Connect webhooks to the real connector (``POST /v1/webhooks/stripe``), which
queues them for the real importer, on the real broker and store (SPEC "Keeping data fresh").

The fake's webhook sender misbehaves on purpose (``sandbox.webhooks``: ``repeat_next``,
``hold_next`` then release newest first, ``drop_next``, a wrong secret or an old timestamp). With
the importer's poll out of the way (``SYNC_INTERVAL_S`` of 10 minutes) the webhooks alone change
the records; a dropped one is found by the poll (every second). Which events the importer took is
read from its log (``sync.webhook_applied`` names each event), which the fake's log of deliveries
(``delivered``, ``dropped``) says were sent, or not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import pytest
from contracts import topics
from contracts.records import CustomerRecord, SubscriptionRecord
from contracts.sync import SYNC_EVENTS_TOPIC
from devstack.pytest_plugin import CollectEvents, RunningSandbox, RunServices
from pymongo.database import Database
from sandbox.client import SandboxAdmin, authorize_without_browser
from sync_webhooks_kit import (
    FAST_POLL,
    IMPORT_TIMEOUT_S,
    WEBHOOKS_ONLY,
    SyncedConnection,
    a_dropped_change_is_polled,
    deliveries,
    end_offsets,
    event_id_of,
    sync_live,
    until,
)

WEBHOOK_SECRET = "whsec_delivery_faults_" + uuid.uuid4().hex
RETURN_URL = "http://localhost/onboarding/done"


@pytest.fixture
def stripe_admin(sandbox_processors: RunningSandbox) -> Iterator[SandboxAdmin]:
    """The fake Stripe's admin API; its data and webhook endpoints are put back afterwards."""
    admin = SandboxAdmin(sandbox_processors.endpoints.stripe_api_base)
    yield admin
    admin.remove_webhooks()
    admin.reset()


@dataclass(frozen=True)
class Synced(SyncedConnection):
    """A Stripe connection made through the connector, imported, its sync live."""

    PROCESSOR: ClassVar[str] = "stripe"


async def connect_and_sync(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
    importer_env: dict[str, str],
) -> Synced:
    imports = await kafka_events(topics.IMPORTS)
    stack = run_services(
        "connector",
        "importer",
        env={"importer": importer_env, "connector": {"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}},
    )
    connector = stack.url("connector")
    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {stack.jwt(account_id)}"}
    ) as http:
        answer = await http.post(
            f"{connector}/v1/accounts/{account_id}/connections/stripe",
            json={
                "api_key": sandbox_processors.credentials.stripe_api_key,
                "contact_email": f"owner+{account_id}@example.com",
                "return_url": RETURN_URL,
            },
        )
        assert answer.status_code == 200, answer.text
        connection_id = answer.json()["connection_id"]
        callback = await http.get(authorize_without_browser(answer.json()["authorize_url"]))
        assert callback.headers["location"].endswith("status=connected")
    await imports.wait_for(
        lambda e: e.type == "ImportCompleted" and e.value["account_id"] == account_id,
        timeout_s=IMPORT_TIMEOUT_S,
    )
    await sync_live(mongo_db, connection_id)
    billing = await kafka_events(list(topics.BILLING_TOPICS))
    billing_from = await end_offsets(stack.settings.kafka_bootstrap_servers, topics.BILLING_TOPICS)
    return Synced(stack, account_id, connection_id, mongo_db, billing, billing_from)


def stripe_api(sandbox_processors: RunningSandbox) -> httpx.Client:
    key = sandbox_processors.credentials.stripe_api_key
    return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"})


def some_customers(sandbox_processors: RunningSandbox, count: int) -> list[str]:
    with stripe_api(sandbox_processors) as http:
        page = http.get(
            f"{sandbox_processors.endpoints.stripe_api_base}/v1/customers", params={"limit": count}
        )
    return [c["id"] for c in page.raise_for_status().json()["data"]]


def a_live_subscription(sandbox_processors: RunningSandbox) -> str:
    with stripe_api(sandbox_processors) as http:
        page = http.get(
            f"{sandbox_processors.endpoints.stripe_api_base}/v1/subscriptions",
            params={"limit": 100, "status": "active"},
        )
    return next(
        str(s["id"])
        for s in page.raise_for_status().json()["data"]
        if not s["cancel_at_period_end"] and not s["cancel_at"]
    )


async def test_a_webhook_delivered_twice_changes_nothing_more(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    endpoint = stripe_admin.add_webhook(
        synced.stack.url("connector", "/v1/webhooks/stripe"), secret=WEBHOOK_SECRET, repeat_next=1
    )["id"]
    [customer] = some_customers(sandbox_processors, 1)
    customers_before = mongo_db["customers"].count_documents({"account_id": account_id})

    event_id = event_id_of(stripe_admin.update_object("customers", customer, {"email": "twice@sync.example"}))

    stripe_admin.drain_webhook(endpoint)
    assert deliveries(stripe_admin, endpoint, event_id) == ["delivered", "delivered"]
    # Both copies reached the importer, which took each off the sync topic.
    await until(lambda: len(synced.webhooks_taken(event_id)) == 2, "the importer did not take both copies")
    await synced.read_to_end()
    stored = synced.customer_published_as_stored(customer)
    assert stored["email"] == "twice@sync.example"
    assert event_id in synced.applied_ids()
    assert mongo_db["customers"].count_documents({"account_id": account_id}) == customers_before


async def test_webhooks_delivered_newest_first_never_take_a_record_back(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    endpoint = stripe_admin.add_webhook(
        synced.stack.url("connector", "/v1/webhooks/stripe"), secret=WEBHOOK_SECRET, hold_next=4
    )["id"]
    [customer] = some_customers(sandbox_processors, 1)
    subscription = a_live_subscription(sandbox_processors)

    # Four changes, their events held back: a customer's email twice, a cancellation scheduled then undone.
    changes = [
        stripe_admin.update_object("customers", customer, {"email": "older@sync.example"}),
        stripe_admin.update_object("customers", customer, {"email": "newer@sync.example"}),
        stripe_admin.cancel_subscription(subscription, at_period_end=True),
        stripe_admin.reactivate_subscription(subscription),
    ]
    event_ids = [event_id_of(change) for change in changes]
    # Once the fourth is held, the fake sends the four newest first.
    stripe_admin.drain_webhook(endpoint)
    log = [d["event"] for d in stripe_admin.webhook(endpoint, deliveries=True)["deliveries"]]
    assert log == event_ids[::-1], "the fake did not deliver them newest first"
    await until(
        lambda: all(synced.webhooks_taken(event_id) for event_id in event_ids),
        "the importer did not take every event",
    )

    # Each older event came after the newer one: neither brought its object back.
    await synced.read_to_end()
    stored_customer = synced.stored("customers", customer)
    assert stored_customer["email"] == "newer@sync.example"
    customer_messages = synced.messages(topics.BILLING_CUSTOMERS, customer)
    assert customer_messages, "the customer's change was not published"
    assert [e.value["email"] for e in customer_messages] == ["newer@sync.example"] * len(customer_messages)
    assert CustomerRecord.model_validate(customer_messages[-1].value) == CustomerRecord.model_validate(
        stored_customer
    )
    stored_subscription = synced.stored("subscriptions", subscription)
    assert (stored_subscription["status"], stored_subscription["cancel_at_period_end"]) == ("active", False)
    subscription_messages = synced.messages(topics.BILLING_SUBSCRIPTIONS, subscription)
    assert [e.value["cancel_at_period_end"] for e in subscription_messages] == [False] * len(
        subscription_messages
    )
    if subscription_messages:  # nothing to publish when the first read found it as imported
        last = SubscriptionRecord.model_validate(subscription_messages[-1].value)
        assert last == SubscriptionRecord.model_validate(stored_subscription)
    assert synced.stored("cancellations", subscription) is None


async def test_a_dropped_webhook_is_recovered_by_the_next_poll(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, FAST_POLL
    )
    endpoint = stripe_admin.add_webhook(
        synced.stack.url("connector", "/v1/webhooks/stripe"), secret=WEBHOOK_SECRET, drop_next=1
    )["id"]
    [customer] = some_customers(sandbox_processors, 1)

    await a_dropped_change_is_polled(synced, stripe_admin, endpoint, customer)


async def test_forged_and_expired_signatures_are_refused_and_change_nothing(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    queued = await kafka_events(SYNC_EVENTS_TOPIC)
    url = synced.stack.url("connector", "/v1/webhooks/stripe")
    forged_customer, expired_customer, control_customer = some_customers(sandbox_processors, 3)
    before = {c: synced.stored("customers", c)["email"] for c in (forged_customer, expired_customer)}

    async def refused(customer: str, email: str, **signing: Any) -> str:
        """A change whose one delivery is signed as ``signing`` says: refused with 400, not retried."""
        endpoint = stripe_admin.add_webhook(url, max_attempts=1, **signing)["id"]
        event_id = event_id_of(stripe_admin.update_object("customers", customer, {"email": email}))
        stripe_admin.drain_webhook(endpoint)
        assert stripe_admin.webhook(endpoint)["stats"]["by_status"] == {"400": 1}
        assert deliveries(stripe_admin, endpoint, event_id) == ["gave_up"]
        stripe_admin.remove_webhook(endpoint)
        return event_id

    forged_event = await refused(
        forged_customer, "forged@x.example", secret="whsec_forged_" + uuid.uuid4().hex
    )
    expired_event = await refused(
        expired_customer, "expired@x.example", secret=WEBHOOK_SECRET, signature_time_offset_s=-3600
    )

    # A correctly signed delivery of a third change goes through, so the refused ones are not just late.
    good = stripe_admin.add_webhook(url, secret=WEBHOOK_SECRET)["id"]
    control_event = event_id_of(
        stripe_admin.update_object("customers", control_customer, {"email": "control@x.example"})
    )
    stripe_admin.drain_webhook(good)
    assert deliveries(stripe_admin, good, control_event) == ["delivered"]
    await until(
        lambda: (synced.stored("customers", control_customer) or {}).get("email") == "control@x.example",
        "the correctly signed webhook was not applied",
    )
    # One key, one partition: had the refused events been queued, they would be read before this one.
    await queued.wait_for(
        lambda e: isinstance(e.value, dict) and e.value.get("processor_event_id") == control_event
    )
    queued_ids = {e.value.get("processor_event_id") for e in queued.events if isinstance(e.value, dict)}
    assert forged_event not in queued_ids
    assert expired_event not in queued_ids
    await synced.read_to_end()
    for customer, email in before.items():
        assert synced.stored("customers", customer)["email"] == email
        assert synced.messages(topics.BILLING_CUSTOMERS, customer) == []


async def test_an_importer_killed_while_webhooks_arrive_loses_none_of_them(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    endpoint = stripe_admin.add_webhook(
        synced.stack.url("connector", "/v1/webhooks/stripe"), secret=WEBHOOK_SECRET
    )["id"]
    customers = some_customers(sandbox_processors, 10)

    # Five changes, the importer killed as their webhooks are being taken, five more while it is down
    # (the connector queues them). Its poll is ten minutes away: the queued webhooks, taken again from
    # where the importer's consumer last committed, bring every change.
    event_ids = [
        event_id_of(
            stripe_admin.update_object("customers", customer, {"email": f"before-{number}@sync.example"})
        )
        for number, customer in enumerate(customers[:5])
    ]
    synced.stack.kill("importer")
    event_ids += [
        event_id_of(
            stripe_admin.update_object("customers", customer, {"email": f"after-{number}@sync.example"})
        )
        for number, customer in enumerate(customers[5:])
    ]
    stripe_admin.drain_webhook(endpoint)
    assert stripe_admin.webhook(endpoint)["stats"]["delivered"] == len(customers)
    synced.stack.restart("importer")

    expected = [f"before-{n}@sync.example" for n in range(5)] + [f"after-{n}@sync.example" for n in range(5)]
    await until(
        lambda: [(synced.stored("customers", c) or {}).get("email") for c in customers] == expected,
        "a change whose webhook arrived around the crash was lost",
    )
    # Each one's webhook was taken off the sync topic (by the killed process or the new one).
    assert [event_id for event_id in event_ids if not synced.webhooks_taken(event_id)] == []
    await synced.read_to_end()
    for customer, email in zip(customers, expected, strict=True):
        assert email in [e.value["email"] for e in synced.messages(topics.BILLING_CUSTOMERS, customer)]
