"""Chargebee webhooks that arrive twice, out of order, never, or with wrong credentials, end to end:
the fake Chargebee posts its site's events to the real connector
(``POST /v1/webhooks/chargebee/{connection_id}``, HTTP Basic with the credentials the connect call
showed), which queues them for the real importer, on the real broker and store (SPEC "Keeping data
fresh").

The fake's webhook sender misbehaves on purpose (``sandbox.webhooks``: ``repeat_next``,
``hold_next`` then newest first, ``drop_next``, wrong credentials). With the importer's poll out of
the way (``SYNC_INTERVAL_S`` of 10 minutes) the webhooks alone change the records; a dropped one is
found by the poll of the site's event list (every second). Which events the importer took is read
from its log (``sync.webhook_applied`` names each event), which the fake's log of deliveries says
were sent, or not. Chargebee orders versions of an object by its ``resource_version``.
"""

from __future__ import annotations

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
from sandbox.client import SandboxAdmin
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


def site_api(sandbox_processors: RunningSandbox) -> str:
    return sandbox_processors.endpoints.chargebee_api_url_template.replace(
        "{site}", sandbox_processors.credentials.chargebee_site
    )


@pytest.fixture
def chargebee_admin(sandbox_processors: RunningSandbox) -> Iterator[SandboxAdmin]:
    """The fake Chargebee's admin API; its data and webhook endpoints are put back afterwards."""
    api = sandbox_processors.endpoints.chargebee_api_url_template
    admin = SandboxAdmin(api[: api.index("/sites/")])
    yield admin
    admin.remove_webhooks()
    admin.reset()


@dataclass(frozen=True)
class Synced(SyncedConnection):
    """A Chargebee connection made through the connector, imported, its sync live; its webhook's
    URL and Basic credentials as the connect call showed them."""

    PROCESSOR: ClassVar[str] = "chargebee"

    site: str
    webhook_url: str
    webhook_username: str
    webhook_password: str

    def add_webhook(self, admin: SandboxAdmin, **options: Any) -> str:
        """The connection's endpoint registered at the site, with its Basic credentials unless given."""
        credentials = {"username": self.webhook_username, "password": self.webhook_password}
        return str(
            admin.add_webhook(self.webhook_url, scopes=[self.site], **{**credentials, **options})["id"]
        )


async def connect_and_sync(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
    importer_env: dict[str, str],
) -> Synced:
    stack = run_services("connector", "importer", env={"importer": importer_env})
    site = sandbox_processors.credentials.chargebee_site
    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {stack.jwt(account_id)}"}
    ) as http:
        answer = await http.post(
            stack.url("connector", f"/v1/accounts/{account_id}/connections/chargebee"),
            json={
                "site": site,
                "api_key": sandbox_processors.credentials.chargebee_api_key,
                "contact_email": f"owner+{account_id}@example.com",
            },
        )
    assert answer.status_code == 201, answer.text
    connected = answer.json()
    connection_id, import_id, webhook = (
        connected["connection_id"],
        connected["import_id"],
        connected["webhook"],
    )
    await until(
        lambda: (mongo_db.imports.find_one({"_id": import_id}) or {}).get("status") == "completed",
        "the import did not complete",
        IMPORT_TIMEOUT_S,
    )
    await sync_live(mongo_db, connection_id)
    billing = await kafka_events(list(topics.BILLING_TOPICS))
    billing_from = await end_offsets(stack.settings.kafka_bootstrap_servers, topics.BILLING_TOPICS)
    return Synced(
        stack,
        account_id,
        connection_id,
        mongo_db,
        billing,
        billing_from,
        site,
        webhook["url"],
        webhook["username"],
        webhook["password"],
    )


def listed(sandbox_processors: RunningSandbox, resource: str, entry: str) -> list[dict[str, Any]]:
    """The first page of a resource of the site, as its API serves it now."""
    with httpx.Client(timeout=30, auth=(sandbox_processors.credentials.chargebee_api_key, "")) as http:
        page = http.get(f"{site_api(sandbox_processors)}/{resource}", params={"limit": 100})
    return [item[entry] for item in page.raise_for_status().json()["list"]]


def some_customers(sandbox_processors: RunningSandbox, count: int) -> list[str]:
    return [str(c["id"]) for c in listed(sandbox_processors, "customers", "customer")[:count]]


def an_active_subscription(sandbox_processors: RunningSandbox) -> str:
    return next(
        str(s["id"])
        for s in listed(sandbox_processors, "subscriptions", "subscription")
        if s["status"] == "active"
    )


async def test_a_chargebee_webhook_delivered_twice_changes_nothing_more(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    endpoint = synced.add_webhook(chargebee_admin, repeat_next=1)
    [customer] = some_customers(sandbox_processors, 1)
    customers_before = mongo_db["customers"].count_documents({"account_id": account_id})

    change = chargebee_admin.update_object("customers", customer, {"email": "twice@sync.example"})
    event_id = event_id_of(change)

    chargebee_admin.drain_webhook(endpoint)
    assert deliveries(chargebee_admin, endpoint, event_id) == ["delivered", "delivered"]
    # Both copies reached the importer, which took each off the sync topic.
    await until(lambda: len(synced.webhooks_taken(event_id)) == 2, "the importer did not take both copies")
    await synced.read_to_end()
    stored = synced.customer_published_as_stored(customer)
    assert stored["email"] == "twice@sync.example"
    assert stored["sync_version"] == change["object"]["resource_version"]
    assert event_id in synced.applied_ids()
    assert mongo_db["customers"].count_documents({"account_id": account_id}) == customers_before


async def test_chargebee_webhooks_delivered_newest_first_never_take_a_record_back(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    endpoint = synced.add_webhook(chargebee_admin, hold_next=4)
    [customer] = some_customers(sandbox_processors, 1)
    subscription = an_active_subscription(sandbox_processors)

    # Four changes, their events held back: a customer's email twice, a subscription cancelled then
    # reactivated.
    changes = [
        chargebee_admin.update_object("customers", customer, {"email": "older@sync.example"}),
        chargebee_admin.update_object("customers", customer, {"email": "newer@sync.example"}),
        chargebee_admin.cancel_subscription(subscription),
        chargebee_admin.reactivate_subscription(subscription),
    ]
    event_ids = [event_id_of(change) for change in changes]
    versions = [int(change["object"]["resource_version"]) for change in changes]
    assert versions[0] < versions[1]
    assert versions[2] < versions[3]
    # Once the fourth is held, the fake sends the four newest first.
    chargebee_admin.drain_webhook(endpoint)
    log = [d["event"] for d in chargebee_admin.webhook(endpoint, deliveries=True)["deliveries"]]
    assert log == event_ids[::-1], "the fake did not deliver them newest first"
    await until(
        lambda: all(synced.webhooks_taken(event_id) for event_id in event_ids),
        "the importer did not take every event",
    )

    # Each older event came after the newer one: neither brought its object back.
    await synced.read_to_end()
    stored_customer = synced.stored("customers", customer)
    assert (stored_customer["email"], stored_customer["sync_version"]) == ("newer@sync.example", versions[1])
    customer_messages = synced.messages(topics.BILLING_CUSTOMERS, customer)
    assert customer_messages, "the customer's change was not published"
    assert [e.value["email"] for e in customer_messages] == ["newer@sync.example"] * len(customer_messages)
    assert CustomerRecord.model_validate(customer_messages[-1].value) == CustomerRecord.model_validate(
        stored_customer
    )
    stored_subscription = synced.stored("subscriptions", subscription)
    assert (stored_subscription["status"], stored_subscription["sync_version"]) == ("active", versions[3])
    subscription_messages = synced.messages(topics.BILLING_SUBSCRIPTIONS, subscription)
    assert [e.value["status"] for e in subscription_messages] == ["active"] * len(subscription_messages)
    if subscription_messages:  # nothing to publish when the first read found it as imported
        last = SubscriptionRecord.model_validate(subscription_messages[-1].value)
        assert last == SubscriptionRecord.model_validate(stored_subscription)
    # The cancellation was never seen: nothing stored, nothing published (not even a tombstone).
    assert synced.stored("cancellations", subscription) is None
    assert synced.messages(topics.BILLING_CANCELLATIONS, subscription) == []


async def test_a_dropped_chargebee_webhook_is_recovered_by_the_next_poll(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, FAST_POLL
    )
    endpoint = synced.add_webhook(chargebee_admin, drop_next=1)
    [customer] = some_customers(sandbox_processors, 1)

    await a_dropped_change_is_polled(synced, chargebee_admin, endpoint, customer)


async def test_wrong_basic_credentials_are_refused_and_change_nothing(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    synced = await connect_and_sync(
        run_services, sandbox_processors, kafka_events, mongo_db, account_id, WEBHOOKS_ONLY
    )
    queued = await kafka_events(SYNC_EVENTS_TOPIC)
    wrong_password, wrong_user, control_customer = some_customers(sandbox_processors, 3)
    before = {c: synced.stored("customers", c)["email"] for c in (wrong_password, wrong_user)}

    async def refused(customer: str, email: str, **credentials: str) -> str:
        """A change whose one delivery carries ``credentials``: refused with 401, not retried."""
        endpoint = synced.add_webhook(chargebee_admin, max_attempts=1, **credentials)
        event_id = event_id_of(chargebee_admin.update_object("customers", customer, {"email": email}))
        chargebee_admin.drain_webhook(endpoint)
        assert chargebee_admin.webhook(endpoint)["stats"]["by_status"] == {"401": 1}
        assert deliveries(chargebee_admin, endpoint, event_id) == ["gave_up"]
        chargebee_admin.remove_webhook(endpoint)
        return event_id

    refused_events = [
        await refused(wrong_password, "wrong-password@x.example", password=synced.webhook_password + "x"),
        await refused(wrong_user, "wrong-user@x.example", username=synced.webhook_username + "x"),
    ]
    # Without credentials at all: 401 with a Basic challenge.
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(synced.webhook_url, json={"id": "ev_no_credentials"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].lower().startswith("basic")

    # A delivery with the right credentials goes through, so the refused ones are not just late.
    good = synced.add_webhook(chargebee_admin)
    control_event = event_id_of(
        chargebee_admin.update_object("customers", control_customer, {"email": "control@x.example"})
    )
    chargebee_admin.drain_webhook(good)
    assert deliveries(chargebee_admin, good, control_event) == ["delivered"]
    await until(
        lambda: (synced.stored("customers", control_customer) or {}).get("email") == "control@x.example",
        "the webhook with the right credentials was not applied",
    )
    # One site, one key, one partition: had the refused events been queued, they would be read first.
    await queued.wait_for(
        lambda e: isinstance(e.value, dict) and e.value.get("processor_event_id") == control_event
    )
    queued_ids = {e.value.get("processor_event_id") for e in queued.events if isinstance(e.value, dict)}
    assert queued_ids == {control_event}
    assert not any(synced.webhooks_taken(event_id) for event_id in refused_events)
    await synced.read_to_end()
    for customer, email in before.items():
        assert synced.stored("customers", customer)["email"] == email
        assert synced.messages(topics.BILLING_CUSTOMERS, customer) == []
