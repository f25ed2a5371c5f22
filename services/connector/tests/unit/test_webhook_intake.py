"""Webhook intake over fakes: Stripe's signature rules, Chargebee's per-connection credentials, and
what is queued for the importer (and that nothing is when a request is refused)."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
import pytest
from connector.domain.stripe_signature import InvalidSignature, StripeWebhookSecrets, sign
from connector_fakes import (
    CHARGEBEE_KEY,
    STRIPE_ACCOUNT,
    RecordingSyncQueue,
    SyncStatesByConnection,
    World,
    build_world,
)
from connector_unit_kit import app_over, auth, stripe_event_body, webhook_intake
from contracts.connections import ConnectionStatus
from contracts.events import ConnectionLost, Processor
from contracts.sync import StoredSyncState, SyncStatus

SECRET = "whsec_unit_newest_0123456789"
OLD_SECRET = "whsec_unit_older_0123456789"
NOW = 1_790_000_000
ACCOUNT = "acc_hooks"


@dataclasses.dataclass
class Hooks:
    world: World
    queue: RecordingSyncQueue
    states: SyncStatesByConnection
    api: httpx.AsyncClient


def stripe_body(**overrides: Any) -> bytes:
    return stripe_event_body(NOW - 3, **overrides)


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    world = build_world()
    queue, states = RecordingSyncQueue(), SyncStatesByConnection()
    intake = webhook_intake(world, queue, f"{SECRET}, {OLD_SECRET}", now_s=lambda: float(NOW))
    world.deps = dataclasses.replace(world.deps, webhooks=intake, sync_states=states)
    app = app_over(world)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://connector.test") as client:
            yield Hooks(world, queue, states, client)


# --- the signature check itself ------------------------------------------------------------------


def digest(payload: bytes, secret: str, timestamp: int) -> str:
    return sign(payload, secret, timestamp).split("v1=")[1]


def test_a_signature_by_any_configured_secret_verifies() -> None:
    secrets = StripeWebhookSecrets.from_setting(f"{SECRET},{OLD_SECRET}")
    body = stripe_body()
    secrets.verify(body, sign(body, SECRET, NOW), now_s=NOW)
    secrets.verify(body, sign(body, OLD_SECRET, NOW), now_s=NOW)


def test_any_of_several_v1_values_may_match_and_other_schemes_are_ignored() -> None:
    secrets = StripeWebhookSecrets.from_setting(SECRET)
    body = stripe_body()
    good = digest(body, SECRET, NOW)
    header = f"t={NOW},v1={'0' * 64},v0={digest(body, 'whsec_other', NOW)},v1={good}"
    secrets.verify(body, header, now_s=NOW)
    with pytest.raises(InvalidSignature):
        # A v0 value never counts, even when it is the right HMAC.
        secrets.verify(body, f"t={NOW},v0={good}", now_s=NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"v1={'a' * 64}",
        "t=notanumber,v1=abc",
        f"t={NOW}",
        f"t={NOW},v1={'0' * 64}",
    ],
)
def test_malformed_or_forged_headers_are_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        StripeWebhookSecrets.from_setting(SECRET).verify(stripe_body(), header, now_s=NOW)


def test_the_raw_bytes_are_signed_so_a_changed_body_is_refused() -> None:
    body = stripe_body()
    header = sign(body, SECRET, NOW)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    with pytest.raises(InvalidSignature):
        StripeWebhookSecrets.from_setting(SECRET).verify(reserialised, header, now_s=NOW)


@pytest.mark.parametrize(
    ("age_s", "valid"), [(0, True), (300, True), (301, False), (-300, True), (-301, False)]
)
def test_the_timestamp_must_be_within_300_seconds(age_s: int, valid: bool) -> None:
    body = stripe_body()
    header = sign(body, SECRET, NOW - age_s)
    secrets = StripeWebhookSecrets.from_setting(SECRET)
    if valid:
        secrets.verify(body, header, now_s=NOW)
    else:
        with pytest.raises(InvalidSignature):
            secrets.verify(body, header, now_s=NOW)


def test_without_a_configured_secret_every_webhook_is_refused() -> None:
    body = stripe_body()
    with pytest.raises(InvalidSignature):
        StripeWebhookSecrets.from_setting(" , ").verify(body, sign(body, SECRET, NOW), now_s=NOW)


# --- Stripe over HTTP ----------------------------------------------------------------------------


async def test_a_verified_stripe_event_is_queued_for_its_processor_account(hooks: Hooks) -> None:
    body = stripe_body()
    response = await hooks.api.post(
        "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, OLD_SECRET, NOW)}
    )

    assert response.status_code == 200
    [event] = hooks.queue.events
    assert (event.processor, event.processor_account_id, event.processor_event_id) == (
        Processor.STRIPE,
        STRIPE_ACCOUNT,
        "evt_1",
    )
    assert (event.event_type, event.object_type, event.object_id) == ("customer.updated", "customer", "cus_1")
    assert event.created == datetime.fromtimestamp(NOW - 3, UTC)
    assert event.key() == f"stripe:{STRIPE_ACCOUNT}".encode()
    assert "a@b.example" not in event.model_dump_json()  # the object's copy never travels


async def test_a_webhook_is_taken_on_the_event_loop_without_a_worker_thread(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI calls a plain-function dependency in a worker thread: a hop that cost a fifth of a
    # webhook's CPU at the connector (benchmarks/sync_benchmark.py). Every step here is a coroutine.
    hops: list[object] = []

    async def no_worker_thread(func: object, *args: object, **kwargs: object) -> object:
        hops.append(func)
        raise AssertionError(f"a worker thread was used for {func!r}")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_worker_thread)
    body = stripe_body()
    response = await hooks.api.post(
        "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, SECRET, NOW)}
    )

    assert response.status_code == 200
    assert hops == []
    assert len(hooks.queue.events) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        sign(stripe_body(), "whsec_forged", NOW),
        sign(stripe_body(), SECRET, NOW - 301),
        sign(stripe_body(id="evt_other"), SECRET, NOW),
    ],
)
async def test_forged_or_expired_stripe_webhooks_are_refused_and_change_nothing(
    hooks: Hooks, signature: str | None
) -> None:
    headers = {} if signature is None else {"Stripe-Signature": signature}
    response = await hooks.api.post("/v1/webhooks/stripe", content=stripe_body(), headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert hooks.queue.events == []
    assert hooks.world.connections.documents == {}


async def test_events_of_the_platform_itself_are_accepted_and_not_queued(hooks: Hooks) -> None:
    body = stripe_body(account=None)
    response = await hooks.api.post(
        "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, SECRET, NOW)}
    )
    assert response.status_code == 200
    assert hooks.queue.events == []


async def test_a_deauthorization_makes_the_connection_need_reconnecting_once_and_queues_nothing(
    hooks: Hooks,
) -> None:
    connected = await hooks.api.post(
        f"/v1/accounts/{ACCOUNT}/connections/chargebee",
        json={"site": "acme-test", "api_key": CHARGEBEE_KEY, "contact_email": "o@acme.example"},
        headers=auth(ACCOUNT),
    )
    connection_id = connected.json()["connection_id"]
    document = hooks.world.connections.documents[connection_id]
    document.connection = document.connection.model_copy(
        update={"processor": Processor.STRIPE, "processor_account_id": STRIPE_ACCOUNT}
    )
    body = stripe_body(
        type="account.application.deauthorized", data={"object": {"id": "ca_x", "object": "application"}}
    )

    for _ in range(2):  # Stripe delivers an event more than once
        response = await hooks.api.post(
            "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, SECRET, NOW)}
        )
        assert response.status_code == 200

    assert hooks.queue.events == []
    assert document.connection.status is ConnectionStatus.NEEDS_RECONNECT
    [lost] = hooks.world.publisher.events(ConnectionLost)
    assert isinstance(lost, ConnectionLost)
    assert (lost.connection_id, lost.reason) == (connection_id, "deauthorized")
    assert lost.processor is Processor.STRIPE
    assert lost.contact_email == "o@acme.example"


async def test_a_deauthorization_of_an_unknown_account_is_taken_and_changes_nothing(hooks: Hooks) -> None:
    body = stripe_body(
        type="account.application.deauthorized",
        account="acct_nobody",
        data={"object": {"id": "ca_x", "object": "application"}},
    )

    response = await hooks.api.post(
        "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, SECRET, NOW)}
    )

    assert response.status_code == 200
    assert hooks.queue.events == []
    assert hooks.world.publisher.events(ConnectionLost) == []


# --- Chargebee over HTTP -------------------------------------------------------------------------


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def chargebee_body() -> dict[str, Any]:
    return {
        "id": "ev_1",
        "occurred_at": NOW - 5,
        "event_type": "subscription_cancelled",
        "content": {
            "subscription": {"id": "sub_1", "resource_version": 1_789_999_995_123, "status": "cancelled"},
            "customer": {"id": "cus_1", "resource_version": 1},
        },
    }


async def connect_chargebee(hooks: Hooks) -> dict[str, Any]:
    response = await hooks.api.post(
        f"/v1/accounts/{ACCOUNT}/connections/chargebee",
        json={"site": "acme-test", "api_key": CHARGEBEE_KEY, "contact_email": "o@acme.example"},
        headers=auth(ACCOUNT),
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def test_chargebee_connect_shows_webhook_credentials_once_and_stores_only_a_hash(hooks: Hooks) -> None:
    body = await connect_chargebee(hooks)

    webhook = body["webhook"]
    assert webhook["url"] == f"https://connector.test/v1/webhooks/chargebee/{body['connection_id']}"
    assert len(webhook["password"]) >= 32
    stored = hooks.world.connections.documents[body["connection_id"]].connection
    assert webhook["password"] not in stored.model_dump_json()
    assert stored.webhook_password_sha256 is not None
    shown = await hooks.api.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))
    assert webhook["password"] not in shown.text


async def test_a_chargebee_webhook_with_the_connections_credentials_is_queued(hooks: Hooks) -> None:
    connected = await connect_chargebee(hooks)
    webhook = connected["webhook"]

    response = await hooks.api.post(
        webhook["url"].removeprefix("https://connector.test"),
        json=chargebee_body(),
        headers=basic(webhook["username"], webhook["password"]),
    )

    assert response.status_code == 200
    [event] = hooks.queue.events
    assert (event.processor, event.processor_account_id, event.account_id) == (
        Processor.CHARGEBEE,
        "acme-test",
        ACCOUNT,
    )
    assert (event.object_type, event.object_id, event.resource_version) == (
        "subscription",
        "sub_1",
        1_789_999_995_123,
    )
    assert event.connection_id == connected["connection_id"]


async def test_wrong_chargebee_credentials_get_401_and_change_nothing(hooks: Hooks) -> None:
    connected = await connect_chargebee(hooks)
    webhook, path = connected["webhook"], f"/v1/webhooks/chargebee/{connected['connection_id']}"
    before = hooks.world.connections.documents[connected["connection_id"]].connection

    for headers in (
        {},
        basic(webhook["username"], webhook["password"] + "x"),
        basic("someone", webhook["password"]),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer " + webhook["password"]},
    ):
        response = await hooks.api.post(path, json=chargebee_body(), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    unknown = await hooks.api.post(
        "/v1/webhooks/chargebee/con_unknown", json=chargebee_body(), headers=basic(webhook["username"], "x")
    )
    assert unknown.status_code == 401
    assert hooks.queue.events == []
    assert hooks.world.connections.documents[connected["connection_id"]].connection == before


async def test_a_chargebee_webhook_of_a_disconnected_connection_is_taken_and_dropped(hooks: Hooks) -> None:
    connected = await connect_chargebee(hooks)
    webhook = connected["webhook"]
    await hooks.api.delete(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))

    response = await hooks.api.post(
        f"/v1/webhooks/chargebee/{connected['connection_id']}",
        json=chargebee_body(),
        headers=basic(webhook["username"], webhook["password"]),
    )

    assert response.status_code == 200
    assert hooks.queue.events == []


# --- sync in GET …/connection -------------------------------------------------------------------


async def test_the_connection_shows_what_the_importer_recorded_about_its_sync(hooks: Hooks) -> None:
    connected = await connect_chargebee(hooks)
    now = hooks.world.clock()
    shown = await hooks.api.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))
    # Nothing recorded yet (the first import has not completed): not syncing.
    assert shown.json()["sync"] == {"status": "stopped", "last_event_at": None, "lag_s": None}

    hooks.states.states[connected["connection_id"]] = StoredSyncState.model_validate(
        {
            "_id": connected["connection_id"],
            "account_id": ACCOUNT,
            "processor": "chargebee",
            "status": "live",
            "last_event_at": now - timedelta(minutes=5),
            "synced_through": now - timedelta(seconds=20),
            "interval_s": 60,
        }
    )
    live = (await hooks.api.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))).json()["sync"]
    assert live["status"] == SyncStatus.LIVE
    assert live["lag_s"] == 20
    assert datetime.fromisoformat(live["last_event_at"]) == now - timedelta(minutes=5)

    hooks.world.clock.advance(seconds=600)
    behind = (await hooks.api.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))).json()["sync"]
    assert behind["status"] == SyncStatus.CATCHING_UP

    await hooks.api.delete(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))
    gone = (await hooks.api.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))).json()["sync"]
    assert gone["status"] == SyncStatus.STOPPED
