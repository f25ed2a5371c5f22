"""Webhook intake on the real broker and store: a verified event lands on the sync topic keyed by its
processor account; a forged, expired or unauthenticated one is refused and nothing is queued."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from connector.bootstrap import build
from connector.domain.stripe_signature import sign
from connector_integration_kit import PUBLIC_BASE_URL, Processors, Secrets, connector_settings
from contracts.connections import CONNECTIONS_COLLECTION
from contracts.sync import SYNC_EVENTS_TOPIC
from devstack.events import TopicCollector
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from sandbox import SAMPLE_CHARGEBEE_KEY, SAMPLE_CHARGEBEE_SITE

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

NEW_SECRET = "whsec_integration_new_" + uuid.uuid4().hex
OLD_SECRET = "whsec_integration_old_" + uuid.uuid4().hex


class Intake:
    def __init__(self, http: httpx.AsyncClient, queued: TopicCollector, secrets: Secrets, db: Any) -> None:
        self.http, self.queued, self.secrets, self.db = http, queued, secrets, db


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def intake(kafka_bootstrap: str, mongodb_url: str, processors: Processors) -> AsyncIterator[Intake]:
    secrets = Secrets.generate()
    db_name = f"t_webhooks_{uuid.uuid4().hex[:10]}"
    settings = connector_settings(
        kafka=kafka_bootstrap,
        mongodb_url=mongodb_url,
        db_name=db_name,
        processors=processors,
        secrets=secrets,
        stripe_webhook_secret=SecretStr(f"{NEW_SECRET},{OLD_SECRET}"),
    )
    queued = await TopicCollector(kafka_bootstrap, SYNC_EVENTS_TOPIC).start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    app = build(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE_URL) as http:
                yield Intake(http, queued, secrets, mongo[db_name])
    finally:
        await queued.stop()
        await mongo.drop_database(db_name)
        await mongo.close()


def stripe_event(account: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "customer.subscription.updated",
            "created": int(time.time()),
            "livemode": False,
            "account": account,
            "data": {"object": {"id": "sub_intake", "object": "subscription", "status": "active"}},
        }
    ).encode()


async def test_a_signed_stripe_event_is_queued_keyed_by_its_account(intake: Intake) -> None:
    account, event_id = f"acct_{uuid.uuid4().hex[:12]}", f"evt_{uuid.uuid4().hex}"
    body = stripe_event(account, event_id)
    # Signed with the older of two secrets, during a rotation.
    response = await intake.http.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body, OLD_SECRET, int(time.time()))},
    )

    assert response.status_code == 200
    [queued] = await intake.queued.wait_for(lambda e: e.value.get("processor_event_id") == event_id)
    assert queued.key == f"stripe:{account}"
    assert queued.value["type"] == "ProcessorEventReceived"
    assert (queued.value["object_type"], queued.value["object_id"]) == ("subscription", "sub_intake")


async def test_forged_and_expired_stripe_events_are_refused_and_never_queued(intake: Intake) -> None:
    account = f"acct_{uuid.uuid4().hex[:12]}"
    forged = stripe_event(account, "evt_forged")
    expired = stripe_event(account, "evt_expired")
    marker = stripe_event(account, "evt_marker")

    bad = await intake.http.post(
        "/v1/webhooks/stripe",
        content=forged,
        headers={"Stripe-Signature": sign(forged, "whsec_not_ours", int(time.time()))},
    )
    old = await intake.http.post(
        "/v1/webhooks/stripe",
        content=expired,
        headers={"Stripe-Signature": sign(expired, NEW_SECRET, int(time.time()) - 400)},
    )
    ok = await intake.http.post(
        "/v1/webhooks/stripe",
        content=marker,
        headers={"Stripe-Signature": sign(marker, NEW_SECRET, int(time.time()))},
    )

    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_signature")
    assert (old.status_code, old.json()["error"]["code"]) == (400, "invalid_signature")
    assert ok.status_code == 200
    # The marker was sent last on the same key, hence the same partition: once it is read, anything
    # queued before it would have been read too.
    await intake.queued.wait_for(lambda e: e.value.get("processor_event_id") == "evt_marker")
    mine = [e.value["processor_event_id"] for e in intake.queued.events if e.key == f"stripe:{account}"]
    assert mine == ["evt_marker"]


async def test_chargebee_webhooks_need_the_connections_own_credentials(intake: Intake) -> None:
    account = f"acc_{uuid.uuid4().hex[:12]}"
    connected = await intake.http.post(
        f"/v1/accounts/{account}/connections/chargebee",
        json={
            "site": SAMPLE_CHARGEBEE_SITE,
            "api_key": SAMPLE_CHARGEBEE_KEY,
            "contact_email": "o@acme.example",
        },
        headers=intake.secrets.auth(account),
    )
    assert connected.status_code == 201
    webhook = connected.json()["webhook"]
    stored = await intake.db[CONNECTIONS_COLLECTION].find_one({"account_id": account})
    assert stored is not None
    assert webhook["password"] not in json.dumps(stored, default=str)
    event = {
        "id": f"ev_{uuid.uuid4().hex}",
        "occurred_at": int(time.time()),
        "event_type": "customer_changed",
        "content": {"customer": {"id": "cust_intake", "resource_version": 1}},
    }

    def basic(password: str) -> dict[str, str]:
        token = base64.b64encode(f"{webhook['username']}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    path = webhook["url"].removeprefix(PUBLIC_BASE_URL)
    wrong = await intake.http.post(path, json={**event, "id": "ev_wrong"}, headers=basic("not-it"))
    right = await intake.http.post(path, json=event, headers=basic(webhook["password"]))

    assert wrong.status_code == 401
    assert right.status_code == 200
    [queued] = await intake.queued.wait_for(lambda e: e.value.get("processor_event_id") == event["id"])
    assert queued.key == f"chargebee:{SAMPLE_CHARGEBEE_SITE}"
    assert (queued.value["account_id"], queued.value["object_id"]) == (account, "cust_intake")
    assert not [e for e in intake.queued.events if e.value.get("processor_event_id") == "ev_wrong"]
