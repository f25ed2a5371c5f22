"""Lost credentials end to end (SPEC "Connection lifecycle"): Stripe's signed deauthorization webhook,
a Chargebee key rolled under a running sync, and a 401 in the middle of an import each make the
connection ``needs_reconnect``: one ``ConnectionLost``, one email, offers off, history readable, sync
stopped, however often the loss is reported.

Every service is a real process over the real broker, store and SMTP catcher, with the sandbox's fake
processors; the fake Stripe signs and sends its webhooks to the connector like Stripe does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contracts import topics
from devstack.events import TopicCollector
from devstack.mailcatcher import MailCatcher
from devstack.pytest_plugin import CollectEvents, RunningSandbox, RunServices
from pymongo.database import Database
from sandbox.client import SandboxAdmin, authorize_without_browser

from sandbox import SAMPLE_STRIPE_ACCOUNT_ID

IMPORT_TIMEOUT_S = 120.0
WAIT_S = 60.0
#: The importer reads the account's events every second here (60 s by default).
FAST_SYNC = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
WEBHOOK_SECRET = "whsec_lost_credentials_" + uuid.uuid4().hex
RETURN_URL = "http://localhost/onboarding/done"
OFFERS_OFF = {
    "past_cancellations": True,
    "churn_metrics": True,
    "recovered_revenue": True,
    "coupon_offers": False,
    "trial_extension_offers": False,
}


@pytest.fixture
def stripe_admin(sandbox_processors: RunningSandbox) -> Iterator[SandboxAdmin]:
    """The fake Stripe's admin API; its data, keys and webhooks are put back afterwards."""
    admin = SandboxAdmin(sandbox_processors.endpoints.stripe_api_base)
    yield admin
    admin.remove_webhooks()
    admin.reset()


@pytest.fixture
def chargebee_admin(sandbox_processors: RunningSandbox) -> Iterator[SandboxAdmin]:
    """The fake Chargebee's admin API; its keys and faults are put back afterwards."""
    template = sandbox_processors.endpoints.chargebee_api_url_template
    admin = SandboxAdmin(template[: template.index("/sites/")])
    yield admin
    admin.reset()


async def until(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.3)


def sync_status(mongo_db: Database[dict[str, Any]], connection_id: str) -> Any:
    return (mongo_db["sync_state"].find_one({"_id": connection_id}) or {}).get("status")


def of_account(collector: TopicCollector, account_id: str, kind: str) -> list[Any]:
    return [e for e in collector.events if e.type == kind and e.value.get("account_id") == account_id]


async def assert_lost(
    http: httpx.AsyncClient,
    connector: str,
    importer: str,
    account_id: str,
    mongo_db: Database[dict[str, Any]],
    connection_id: str,
) -> None:
    """What an account sees once its connection lost its credentials."""
    view = await http.get(f"{connector}/v1/accounts/{account_id}/connection")
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["status"] == "needs_reconnect"
    assert body["features"] == OFFERS_OFF
    assert body["feature_reasons"]["coupon_offers"] == "needs_reconnect"
    assert body["sync"]["status"] == "stopped"
    await until(lambda: sync_status(mongo_db, connection_id) == "stopped", "the importer's sync did not stop")
    # The history stays readable.
    history = await http.get(f"{importer}/v1/accounts/{account_id}/cancellations", params={"limit": 5})
    assert history.status_code == 200, history.text
    assert history.json()["items"]
    offer = await http.post(
        f"{connector}/v1/accounts/{account_id}/offers",
        json={"kind": "trial_extension", "subscription_id": "sub_any", "days": 7},
        headers={"Idempotency-Key": f"lost-{uuid.uuid4().hex}"},
    )
    assert (offer.status_code, offer.json()["error"]["code"]) == (409, "feature_unavailable")


async def test_a_stripe_deauthorization_webhook_loses_the_connection_once(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mailbox: MailCatcher,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    imports = await kafka_events(topics.IMPORTS)
    connections = await kafka_events(topics.CONNECTIONS)
    notifications = await kafka_events(topics.NOTIFICATIONS)
    stack = run_services(
        "connector",
        "importer",
        "notifier",
        env={"importer": FAST_SYNC, "connector": {"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}},
    )
    connector, importer = stack.url("connector"), stack.url("importer")
    contact = f"owner+{account_id}@example.com"
    headers = {"Authorization": f"Bearer {stack.jwt(account_id)}"}

    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        answer = await http.post(
            f"{connector}/v1/accounts/{account_id}/connections/stripe",
            json={
                "api_key": sandbox_processors.credentials.stripe_api_key,
                "contact_email": contact,
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
        await mailbox.wait_for_messages_async(1, to=contact, timeout_s=WAIT_S)  # the import's email
        await until(lambda: sync_status(mongo_db, connection_id) == "live", "sync never went live")
        # Stripe's Connect webhook, delivered twice (Stripe does that too).
        endpoint = stripe_admin.add_webhook(
            f"{connector}/v1/webhooks/stripe", secret=WEBHOOK_SECRET, repeat_next=1
        )

        stripe_admin.deauthorize(SAMPLE_STRIPE_ACCOUNT_ID)

        stripe_admin.drain_webhook(endpoint["id"])
        [lost] = await connections.wait_for(
            lambda e: e.type == "ConnectionLost" and e.value["account_id"] == account_id
        )
        assert (lost.value["connection_id"], lost.value["reason"]) == (connection_id, "deauthorized")
        assert (lost.value["processor"], lost.value["contact_email"]) == ("stripe", contact)
        [email] = await mailbox.wait_for_messages_async(
            1, to=contact, timeout_s=WAIT_S, where=lambda m: "Reconnect Stripe" in m.subject
        )
        for part in (email.text or "", email.html or ""):
            assert "Access for our app was removed from your Stripe account" in part
            assert (stack.settings.app_base_url or connector) in part
        await notifications.wait_for(
            lambda e: e.value.get("kind") == "connection_lost" and e.value["account_id"] == account_id
        )
        await assert_lost(http, connector, importer, account_id, mongo_db, connection_id)
        # The deauthorization is in the account's event list too, for the importer's poll: still one.
        stripe_admin.deauthorize(SAMPLE_STRIPE_ACCOUNT_ID)
        stripe_admin.drain_webhook(endpoint["id"])

    assert len(of_account(connections, account_id, "ConnectionLost")) == 1
    losses = [m for m in mailbox.messages if contact in m.recipients and "Reconnect" in m.subject]
    assert losses == [email]


async def test_a_rolled_chargebee_key_is_found_by_the_next_sync_poll(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mailbox: MailCatcher,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    imports = await kafka_events(topics.IMPORTS)
    connections = await kafka_events(topics.CONNECTIONS)
    stack = run_services("connector", "importer", "notifier", env={"importer": FAST_SYNC})
    connector, importer = stack.url("connector"), stack.url("importer")
    contact = f"owner+{account_id}@example.com"
    credentials = sandbox_processors.credentials

    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {stack.jwt(account_id)}"}
    ) as http:
        connected = await http.post(
            f"{connector}/v1/accounts/{account_id}/connections/chargebee",
            json={
                "site": credentials.chargebee_site,
                "api_key": credentials.chargebee_api_key,
                "contact_email": contact,
            },
        )
        assert connected.status_code == 201, connected.text
        connection_id = connected.json()["connection_id"]
        await imports.wait_for(
            lambda e: e.type == "ImportCompleted" and e.value["account_id"] == account_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
        await until(lambda: sync_status(mongo_db, connection_id) == "live", "sync never went live")

        # The site's admin replaces the key: the stored one answers 401 from now on.
        chargebee_admin.roll_key(site=credentials.chargebee_site, key=credentials.chargebee_api_key)

        [lost] = await connections.wait_for(
            lambda e: e.type == "ConnectionLost" and e.value["account_id"] == account_id
        )
        assert (lost.value["reason"], lost.value["processor"]) == ("credentials_rejected", "chargebee")
        [email] = await mailbox.wait_for_messages_async(
            1, to=contact, timeout_s=WAIT_S, where=lambda m: "Reconnect Chargebee" in m.subject
        )
        assert "Chargebee no longer accepts the API key" in (email.text or "")
        await assert_lost(http, connector, importer, account_id, mongo_db, connection_id)

    assert len(of_account(connections, account_id, "ConnectionLost")) == 1


async def test_a_401_during_an_import_fails_it_with_credentials_rejected_and_loses_the_connection(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mailbox: MailCatcher,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    imports = await kafka_events(topics.IMPORTS)
    connections = await kafka_events(topics.CONNECTIONS)
    stack = run_services("connector", "importer", "notifier")
    connector = stack.url("connector")
    contact = f"owner+{account_id}@example.com"
    credentials = sandbox_processors.credentials

    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {stack.jwt(account_id)}"}
    ) as http:
        connected = await http.post(
            f"{connector}/v1/accounts/{account_id}/connections/chargebee",
            json={
                "site": credentials.chargebee_site,
                "api_key": credentials.chargebee_api_key,
                "contact_email": contact,
            },
        )
        assert connected.status_code == 201, connected.text
        connection_id = connected.json()["connection_id"]
        await imports.wait_for(
            lambda e: e.type == "ImportCompleted" and e.value["account_id"] == account_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
        await until(lambda: sync_status(mongo_db, connection_id) == "live", "sync never went live")
        # From now on the site refuses the key on its invoices, as it does a revoked key (sync reads
        # the event list, which stays open, and polls again only a minute later).
        chargebee_admin.add_fault(
            f"/sites/{credentials.chargebee_site}/api/v2/invoices", status=401, count=1000, method="GET"
        )

        again = await http.post(f"{connector}/v1/accounts/{account_id}/imports")
        assert again.status_code == 202, again.text

        [failed] = await imports.wait_for(
            lambda e: e.type == "ImportFailed" and e.value["account_id"] == account_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
        assert failed.value["code"] == "credentials_rejected"
        [lost] = await connections.wait_for(
            lambda e: e.type == "ConnectionLost" and e.value["account_id"] == account_id
        )
        assert (lost.value["connection_id"], lost.value["reason"]) == (connection_id, "credentials_rejected")
        await mailbox.wait_for_messages_async(
            1, to=contact, timeout_s=WAIT_S, where=lambda m: "Reconnect Chargebee" in m.subject
        )
        view = (await http.get(f"{connector}/v1/accounts/{account_id}/connection")).json()
        assert view["status"] == "needs_reconnect"
        assert view["latest_import"]["status"] == "failed"
        assert view["features"] == OFFERS_OFF
        await until(
            lambda: sync_status(mongo_db, connection_id) == "stopped", "the importer's sync did not stop"
        )

    assert len(of_account(connections, account_id, "ConnectionLost")) == 1
