"""Webhooks the fakes send to a real receiver: signatures checked independently, misbehaviour on demand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox.server import BackgroundServer
from sandbox_kit import Http
from sandbox_webhook_kit import Received, Receiver, webhook_receiver

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_CLIENT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_ID,
    SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    SandboxAdmin,
    SandboxHTTPError,
    authorize_without_browser,
    create_chargebee_app,
    create_stripe_app,
    generate_dataset,
    serve_in_thread,
)

SECRET = "whsec_sandboxTestSecretNew0001"
OLD_SECRET = "whsec_sandboxTestSecretOld0001"
FAST_RETRIES = {"retry_backoff_s": 0.05}


@pytest.fixture(scope="module")
def stripe() -> Iterator[BackgroundServer]:
    server = serve_in_thread(create_stripe_app(generate_dataset(customers=12)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chargebee() -> Iterator[BackgroundServer]:
    server = serve_in_thread(create_chargebee_app(generate_dataset(customers=12)))
    yield server
    server.stop()


@pytest.fixture
def stripe_admin(stripe: BackgroundServer) -> Iterator[SandboxAdmin]:
    admin = SandboxAdmin(stripe.url)
    yield admin
    admin.remove_webhooks()
    admin.reset()


@pytest.fixture
def chargebee_admin(chargebee: BackgroundServer) -> Iterator[SandboxAdmin]:
    admin = SandboxAdmin(chargebee.url)
    yield admin
    admin.remove_webhooks()
    admin.reset()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def connected(stripe: BackgroundServer) -> str:
    """Acme authorizes the platform through OAuth once: its events reach Connect endpoints."""
    query = urllib.parse.urlencode(
        {"response_type": "code", "client_id": SAMPLE_STRIPE_CLIENT_ID, "redirect_uri": "http://localhost/cb"}
    )
    location = authorize_without_browser(f"{stripe.url}/oauth/authorize?{query}")
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    api = Http(stripe.url)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_secret": SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    }
    reply = api.request("POST", "/oauth/token", form=form)
    api.close()
    assert reply.status == 200, reply.text
    token: str = reply.body["access_token"]
    return token


def verify_stripe_signature(received: Received, secrets: list[str], tolerance_s: int = 300) -> dict[str, Any]:
    """Stripe's check written from its documentation, not from the sandbox's code."""
    header = received.headers["stripe-signature"]
    pairs = [part.split("=", 1) for part in header.split(",")]
    timestamps = [int(value) for key, value in pairs if key == "t"]
    assert len(timestamps) == 1
    signatures = [value for key, value in pairs if key == "v1"]
    signed_payload = str(timestamps[0]).encode() + b"." + received.body
    expected = [hmac.new(s.encode(), signed_payload, hashlib.sha256).hexdigest() for s in secrets]
    assert any(hmac.compare_digest(sig, want) for sig in signatures for want in expected), header
    assert abs(time.time() - timestamps[0]) <= tolerance_s
    event: dict[str, Any] = json.loads(received.body)
    return event


def test_stripe_connect_webhook_is_signed_with_both_secrets_and_carries_the_account(
    stripe_admin: SandboxAdmin, receiver: Receiver, connected: str
) -> None:
    endpoint = stripe_admin.add_webhook(receiver.url, secret=SECRET, old_secret=OLD_SECRET)
    assert "secret" not in endpoint
    assert endpoint["has_secret"] is True
    created = stripe_admin.create_object("customers", {"email": "hook@example.com"})
    assert created["events"][0]["pending_webhooks"] == 1
    stripe_admin.drain_webhook(endpoint["id"])

    (request,) = receiver.requests
    assert request.path == "/hooks"
    assert request.headers["content-type"].startswith("application/json")
    signature_values = [p.split("=", 1)[0] for p in request.headers["stripe-signature"].split(",")]
    assert signature_values == ["t", "v1", "v1"]
    event = verify_stripe_signature(request, [SECRET])
    assert verify_stripe_signature(request, [OLD_SECRET]) == event  # the second v1 is the old secret's
    with pytest.raises(AssertionError):
        verify_stripe_signature(request, ["whsec_someoneElse"])
    tampered = Received(request.path, request.headers, request.body.replace(b"hook@", b"evil@"))
    with pytest.raises(AssertionError):
        verify_stripe_signature(tampered, [SECRET])
    reserialised = Received(request.path, request.headers, json.dumps(json.loads(request.body)).encode())
    with pytest.raises(AssertionError):
        verify_stripe_signature(reserialised, [SECRET])  # only the raw bytes verify
    assert event["account"] == SAMPLE_STRIPE_ACCOUNT_ID
    assert event["type"] == "customer.created"
    assert event["id"] == created["events"][0]["id"]
    assert event["data"]["object"]["email"] == "hook@example.com"
    stats = stripe_admin.stats()["webhooks"]
    assert stats["delivered"] == 1
    assert stats["endpoints"] == 1


def test_only_connected_accounts_unless_scoped(
    stripe_admin: SandboxAdmin, receiver: Receiver, connected: str
) -> None:
    endpoint = stripe_admin.add_webhook(receiver.url, secret=SECRET)
    stripe_admin.create_object("customers", {}, account=SAMPLE_STRIPE_OTHER_ACCOUNT_ID)  # never connected
    stripe_admin.create_object("customers", {})
    stripe_admin.drain_webhook(endpoint["id"])
    assert [json.loads(r.body)["account"] for r in receiver.requests] == [SAMPLE_STRIPE_ACCOUNT_ID]

    scoped = stripe_admin.add_webhook(receiver.url, secret=SECRET, scopes=[SAMPLE_STRIPE_OTHER_ACCOUNT_ID])
    stripe_admin.create_object("customers", {}, account=SAMPLE_STRIPE_OTHER_ACCOUNT_ID)
    stripe_admin.drain_webhook(scoped["id"])
    assert json.loads(receiver.requests[-1].body)["account"] == SAMPLE_STRIPE_OTHER_ACCOUNT_ID
    assert stripe_admin.webhook(scoped["id"])["stats"]["delivered"] == 1


def test_drop_repeat_and_reorder(stripe_admin: SandboxAdmin, receiver: Receiver, connected: str) -> None:
    endpoint = stripe_admin.add_webhook(receiver.url, secret=SECRET, drop_next=1, repeat_next=1)
    customer_id = stripe_admin.create_object("customers", {})["object"]["id"]  # dropped
    repeated = stripe_admin.update_object("customers", customer_id, {"name": "Twice"})["events"][0]
    stripe_admin.drain_webhook(endpoint["id"])
    assert [json.loads(r.body)["id"] for r in receiver.requests] == [repeated["id"], repeated["id"]]

    stripe_admin.configure_webhook(endpoint["id"], hold_next=3)
    held = [
        stripe_admin.update_object("customers", customer_id, {"name": f"n{n}"})["events"][0] for n in range(3)
    ]
    stripe_admin.drain_webhook(endpoint["id"])
    arrived = [json.loads(r.body)["id"] for r in receiver.requests[2:]]
    assert arrived == [e["id"] for e in reversed(held)]  # newest first

    stripe_admin.configure_webhook(endpoint["id"], hold_next=5)
    late = stripe_admin.update_object("customers", customer_id, {"name": "late"})["events"][0]
    stripe_admin.drain_webhook(endpoint["id"])
    assert len(receiver.requests) == 5  # still held
    assert stripe_admin.release_webhooks(endpoint["id"]) == 1
    stripe_admin.drain_webhook(endpoint["id"])
    assert json.loads(receiver.requests[-1].body)["id"] == late["id"]

    details = stripe_admin.webhook(endpoint["id"], deliveries=True)
    stats = details["stats"]
    assert (stats["dropped"], stats["repeated"], stats["held"], stats["delivered"]) == (1, 1, 4, 6)
    assert details["deliveries"][0]["outcome"] == "dropped"
    totals = stripe_admin.stats()["webhooks"]
    assert totals["dropped"] == 1
    assert totals["delivered"] == 6


def test_failed_deliveries_are_retried_then_given_up(
    stripe_admin: SandboxAdmin, receiver: Receiver, connected: str
) -> None:
    receiver.statuses = [500, 503]
    endpoint = stripe_admin.add_webhook(receiver.url, secret=SECRET, **FAST_RETRIES)
    event = stripe_admin.create_object("customers", {})["events"][0]
    stripe_admin.drain_webhook(endpoint["id"])
    assert [json.loads(r.body)["id"] for r in receiver.requests] == [event["id"]] * 3
    for request in receiver.requests:
        verify_stripe_signature(request, [SECRET])
    stats = stripe_admin.webhook(endpoint["id"])["stats"]
    assert (stats["attempts"], stats["failed_attempts"], stats["delivered"]) == (3, 2, 1)

    receiver.statuses = [500] * 10
    stripe_admin.configure_webhook(endpoint["id"], max_attempts=2)
    stripe_admin.create_object("customers", {})
    stripe_admin.drain_webhook(endpoint["id"])
    assert stripe_admin.webhook(endpoint["id"])["stats"]["gave_up"] == 1
    assert len(receiver.requests) == 5


def test_unreachable_endpoint_never_blocks_a_change(stripe_admin: SandboxAdmin, connected: str) -> None:
    endpoint = stripe_admin.add_webhook("http://127.0.0.1:9/nothing-listens", secret=SECRET, **FAST_RETRIES)
    stripe_admin.create_object("customers", {})
    stripe_admin.drain_webhook(endpoint["id"])
    stats = stripe_admin.webhook(endpoint["id"])["stats"]
    assert stats["by_status"] == {"no_answer": 4}
    assert stats["gave_up"] == 1


def test_expired_signature_option(stripe_admin: SandboxAdmin, receiver: Receiver, connected: str) -> None:
    endpoint = stripe_admin.add_webhook(receiver.url, secret=SECRET, signature_time_offset_s=-600)
    stripe_admin.create_object("customers", {})
    stripe_admin.drain_webhook(endpoint["id"])
    (request,) = receiver.requests
    verify_stripe_signature(request, [SECRET], tolerance_s=700)
    with pytest.raises(AssertionError):
        verify_stripe_signature(request, [SECRET])


def test_deauthorization_reaches_the_connect_endpoint(stripe: BackgroundServer, receiver: Receiver) -> None:
    admin = SandboxAdmin(stripe.url)
    try:
        endpoint = admin.add_webhook(receiver.url, secret=SECRET)
        admin.deauthorize(SAMPLE_STRIPE_ACCOUNT_ID)
        admin.create_object("customers", {})  # no longer connected: not sent
        admin.drain_webhook(endpoint["id"])
        (request,) = receiver.requests
        event = verify_stripe_signature(request, [SECRET])
        assert event["type"] == "account.application.deauthorized"
        assert event["account"] == SAMPLE_STRIPE_ACCOUNT_ID
        api = Http(stripe.url)
        assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200
        api.close()
    finally:
        admin.remove_webhooks()
        admin.reset()


def test_bad_endpoint_registrations(stripe_admin: SandboxAdmin, chargebee_admin: SandboxAdmin) -> None:
    for bad in (
        {"url": "ftp://x/y", "secret": SECRET},
        {"url": "http://x/y"},
        {"url": "http://x", "secret": "s"},
    ):
        with pytest.raises(SandboxHTTPError) as refused:
            stripe_admin.add_webhook(**bad)
        assert refused.value.status == 422
    with pytest.raises(SandboxHTTPError):
        chargebee_admin.add_webhook("http://x/y", username="only-user")
    with pytest.raises(SandboxHTTPError) as missing:
        stripe_admin.drain_webhook("we_404")
    assert missing.value.status == 404


def test_chargebee_webhook_carries_basic_credentials_and_the_event(
    chargebee: BackgroundServer, chargebee_admin: SandboxAdmin, receiver: Receiver
) -> None:
    endpoint = chargebee_admin.add_webhook(
        receiver.url, username="cb-hooks", password="s3cret-pass", repeat_next=1
    )
    created = chargebee_admin.create_object("customers", {"email": "cb@example.com"})
    chargebee_admin.create_object("customers", {}, site="acme-legacy-test")
    chargebee_admin.drain_webhook(endpoint["id"])

    first, again, legacy = receiver.requests
    expected = "Basic " + base64.b64encode(b"cb-hooks:s3cret-pass").decode()
    assert first.headers["authorization"] == expected
    event = json.loads(first.body)
    assert first.body == again.body  # the repeat is the same event
    assert event["event_type"] == "customer_created"
    assert event["content"]["customer"]["email"] == "cb@example.com"
    assert event["webhook_status"] == "scheduled"
    api = Http(chargebee.url)
    listed = api.get(
        f"/sites/{SAMPLE_CHARGEBEE_SITE}/api/v2/events/{event['id']}", basic=SAMPLE_CHARGEBEE_KEY
    ).body["event"]
    api.close()
    assert listed == event
    assert created["events"][0]["id"] == event["id"]
    assert json.loads(legacy.body)["event_type"] == "customer_created"

    scoped = chargebee_admin.add_webhook(receiver.url, scopes=["acme-legacy-test"])
    chargebee_admin.create_object("customers", {})
    chargebee_admin.drain_webhook(scoped["id"])
    assert chargebee_admin.webhook(scoped["id"])["stats"]["events_offered"] == 0
