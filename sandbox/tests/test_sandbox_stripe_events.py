"""The fake Stripe's event history over real HTTP: changes made while it runs, `/v1/events`, retrieval."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox.events import SandboxClock
from sandbox.server import BackgroundServer
from sandbox_kit import Http

from sandbox import (
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_CLIENT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    SandboxAdmin,
    SandboxHTTPError,
    authorize_without_browser,
    create_stripe_app,
    generate_dataset,
    serve_in_thread,
)

FROZEN_AT = 1_800_000_000.0  # every event of this module's fake happens in one second unless moved
DAY_S = 86_400


@pytest.fixture(scope="module")
def frozen_server() -> Iterator[BackgroundServer]:
    """A small fake Stripe whose event clock stands still (tests move it with the control API)."""
    server = serve_in_thread(
        create_stripe_app(generate_dataset(customers=12), event_clock=SandboxClock(lambda: FROZEN_AT))
    )
    yield server
    server.stop()


@pytest.fixture
def api(frozen_server: BackgroundServer) -> Iterator[Http]:
    client = Http(frozen_server.url)
    yield client
    client.close()
    SandboxAdmin(frozen_server.url).reset()


@pytest.fixture
def admin(frozen_server: BackgroundServer) -> SandboxAdmin:
    return SandboxAdmin(frozen_server.url)


def events(api: Http, *params: tuple[str, Any], key: str = SAMPLE_STRIPE_KEY) -> dict[str, Any]:
    reply = api.get("/v1/events", params=list(params), bearer=key)
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


def all_event_ids(api: Http, *params: tuple[str, Any], limit: int = 3) -> list[str]:
    """Every event id, following `starting_after` page by page."""
    seen: list[str] = []
    cursor: list[tuple[str, Any]] = []
    while True:
        page = events(api, ("limit", limit), *params, *cursor)
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            return seen
        cursor = [("starting_after", seen[-1])]


def test_a_customer_created_updated_and_deleted_gives_three_real_shaped_events(
    api: Http, admin: SandboxAdmin
) -> None:
    created = admin.create_object("customers", {"email": "ada@example.com", "name": "Ada"})
    customer_id = created["object"]["id"]
    assert customer_id.startswith("cus_")
    admin.update_object("customers", customer_id, {"email": "ada@lovelace.example"})
    admin.delete_object("customers", customer_id)

    page = events(api)
    assert page["object"] == "list"
    assert page["url"] == "/v1/events"
    assert page["has_more"] is False
    deleted, updated, first = page["data"]
    assert [e["type"] for e in page["data"]] == ["customer.deleted", "customer.updated", "customer.created"]
    for event in page["data"]:
        assert event["id"].startswith("evt_")
        assert event["object"] == "event"
        assert event["created"] == int(FROZEN_AT)
        assert event["livemode"] is False
        assert event["api_version"]
        assert event["request"] == {"id": None, "idempotency_key": None}
        assert "account" not in event  # read with the account's own key
    # each event carries the object as it was then, not as it is now
    assert first["data"]["object"]["email"] == "ada@example.com"
    assert "previous_attributes" not in first["data"]
    assert updated["data"]["object"]["email"] == "ada@lovelace.example"
    assert updated["data"]["previous_attributes"] == {"email": "ada@example.com"}
    assert deleted["data"]["object"]["id"] == customer_id

    retrieved = api.get(f"/v1/customers/{customer_id}", bearer=SAMPLE_STRIPE_KEY)
    assert retrieved.status == 200
    assert retrieved.body == {"id": customer_id, "object": "customer", "deleted": True}
    listed = api.get("/v1/customers", params={"limit": 100}, bearer=SAMPLE_STRIPE_KEY).body
    assert customer_id not in {c["id"] for c in listed["data"]}

    one = api.get(f"/v1/events/{updated['id']}", bearer=SAMPLE_STRIPE_KEY)
    assert one.status == 200
    assert one.body == updated


def test_retrieving_every_imported_object_type_and_unknown_ids(api: Http) -> None:
    for resource in ("customers", "subscriptions", "invoices", "coupons", "prices", "products", "plans"):
        first = api.get(f"/v1/{resource}", params={"limit": 1}, bearer=SAMPLE_STRIPE_KEY).body["data"][0]
        reply = api.get(f"/v1/{resource}/{first['id']}", bearer=SAMPLE_STRIPE_KEY)
        assert reply.status == 200, resource
        assert reply.body == first
        missing = api.get(f"/v1/{resource}/nope_123", bearer=SAMPLE_STRIPE_KEY)
        assert missing.status == 404
        assert missing.body["error"]["code"] == "resource_missing"
        assert missing.body["error"]["type"] == "invalid_request_error"
    unknown_event = api.get("/v1/events/evt_unknown", bearer=SAMPLE_STRIPE_KEY)
    assert unknown_event.status == 404
    assert unknown_event.body["error"]["code"] == "resource_missing"


def test_same_second_events_page_without_loss_or_repeat_and_created_gte_includes_them(
    api: Http, admin: SandboxAdmin
) -> None:
    customer_id = admin.create_object("customers", {"email": "n0@example.com"})["object"]["id"]
    for n in range(1, 10):
        admin.update_object("customers", customer_id, {"email": f"n{n}@example.com"})
    admin.advance_clock(1)
    admin.update_object("customers", customer_id, {"email": "later@example.com"})

    newest_first = [e["id"] for e in events(api, ("limit", 100))["data"]]
    assert len(newest_first) == 11
    assert newest_first == sorted(newest_first, reverse=True)  # ids grow in the order events happen
    assert all_event_ids(api, limit=3) == newest_first

    # a poll restarting at the second of the last event it applied sees every event of that second
    same_second = events(
        api, ("created[gte]", int(FROZEN_AT)), ("created[lt]", int(FROZEN_AT) + 1), ("limit", 100)
    )
    assert len(same_second["data"]) == 10
    assert {e["created"] for e in same_second["data"]} == {int(FROZEN_AT)}
    assert len(events(api, ("created[gt]", int(FROZEN_AT)))["data"]) == 1
    assert len(events(api, ("created", int(FROZEN_AT)), ("limit", 100))["data"]) == 10
    assert len(events(api, ("created[lte]", int(FROZEN_AT)), ("limit", 100))["data"]) == 10

    # ending_before pages towards newer events, still newest first
    before = events(api, ("ending_before", newest_first[5]), ("limit", 3))
    assert [e["id"] for e in before["data"]] == newest_first[2:5]
    assert before["has_more"] is True
    after = events(api, ("starting_after", newest_first[8]), ("limit", 5))
    assert [e["id"] for e in after["data"]] == newest_first[9:]
    assert after["has_more"] is False


def test_starting_after_keeps_to_the_created_window_as_stripe_does(api: Http, admin: SandboxAdmin) -> None:
    # A poll cut by its cap reads on after its last event, from the same cursor (created[gte]):
    # older events of the window only, never those before its start.
    customer_id = admin.create_object("customers", {"email": "w0@example.com"})["object"]["id"]
    admin.advance_clock(1)
    for n in range(1, 6):
        admin.update_object("customers", customer_id, {"email": f"w{n}@example.com"})
    window = ("created[gte]", int(FROZEN_AT) + 1)

    newest_first = [e["id"] for e in events(api, window, ("limit", 100))["data"]]
    assert len(newest_first) == 5
    first = events(api, window, ("limit", 2))
    rest = events(api, window, ("starting_after", first["data"][-1]["id"]), ("limit", 100))

    assert first["has_more"] is True
    assert [e["id"] for e in first["data"] + rest["data"]] == newest_first
    assert rest["has_more"] is False
    assert all_event_ids(api, window, limit=2) == newest_first


def test_type_filters(api: Http, admin: SandboxAdmin) -> None:
    customer_id = admin.create_object("customers", {})["object"]["id"]
    product_id = admin.create_object("products", {"name": "Gadget"})["object"]["id"]
    admin.create_object("prices", {"product": product_id, "unit_amount": 1500})
    admin.create_object("coupons", {"percent_off": 15.0, "duration": "forever"})
    admin.update_object("customers", customer_id, {"name": "Grace"})

    def types(*params: tuple[str, Any]) -> list[str]:
        return [e["type"] for e in events(api, ("limit", 100), *params)["data"]]

    assert types(("type", "customer.updated")) == ["customer.updated"]
    assert types(("type", "customer.*")) == ["customer.updated", "customer.created"]
    assert types(("types[]", "price.created"), ("types[]", "coupon.created")) == [
        "coupon.created",
        "price.created",
    ]
    assert types(("type", "invoice.paid")) == []
    refused = api.get("/v1/events", params={"type": "a", "types[]": "b"}, bearer=SAMPLE_STRIPE_KEY)
    assert refused.status == 400
    unknown = api.get("/v1/events", params={"colour": "red"}, bearer=SAMPLE_STRIPE_KEY)
    assert unknown.status == 400
    assert unknown.body["error"]["param"] == "colour"
    too_many = api.get("/v1/events", params={"limit": 101}, bearer=SAMPLE_STRIPE_KEY)
    assert too_many.status == 400


def test_only_the_last_30_days_of_events_are_kept(api: Http, admin: SandboxAdmin) -> None:
    customer_id = admin.create_object("customers", {"email": "old@example.com"})["object"]["id"]
    old_event = events(api)["data"][0]["id"]
    admin.advance_clock(30 * DAY_S)
    admin.update_object("customers", customer_id, {"email": "new@example.com"})
    assert [e["id"] for e in events(api)["data"]][-1] == old_event  # exactly 30 days old: still there

    admin.advance_clock(1)
    kept = events(api)["data"]
    assert [e["type"] for e in kept] == ["customer.updated"]
    assert api.get(f"/v1/events/{old_event}", bearer=SAMPLE_STRIPE_KEY).status == 404
    expired_cursor = api.get("/v1/events", params={"starting_after": old_event}, bearer=SAMPLE_STRIPE_KEY)
    assert expired_cursor.status == 400
    assert expired_cursor.body["error"]["code"] == "resource_missing"
    assert events(api, ("created[gte]", 0))["data"] == kept


def test_subscription_cancel_schedule_undo_and_cancel_now(api: Http, admin: SandboxAdmin) -> None:
    customer_id = admin.create_object("customers", {"email": "sub@example.com"})["object"]["id"]
    price = api.get("/v1/prices", params={"limit": 1, "active": "true"}, bearer=SAMPLE_STRIPE_KEY).body[
        "data"
    ][0]
    created = admin.create_object(
        "subscriptions", {"customer": customer_id, "price": price["id"], "quantity": 2}
    )
    sub = created["object"]
    assert sub["status"] == "active"
    assert sub["items"]["data"][0]["price"]["id"] == price["id"]
    assert created["events"][0]["type"] == "customer.subscription.created"

    scheduled = admin.cancel_subscription(sub["id"], at_period_end=True, feedback="too_expensive")
    assert [e["type"] for e in scheduled["events"]] == ["customer.subscription.updated"]
    assert scheduled["events"][0]["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert scheduled["object"]["cancel_at"] == sub["current_period_end"]

    undone = admin.reactivate_subscription(sub["id"])
    assert undone["object"]["cancel_at_period_end"] is False
    assert undone["object"]["canceled_at"] is None

    ended = admin.cancel_subscription(sub["id"], reason="payment_failed")
    assert [e["type"] for e in ended["events"]] == ["customer.subscription.deleted"]
    now = api.get(f"/v1/subscriptions/{sub['id']}", bearer=SAMPLE_STRIPE_KEY).body
    assert now["status"] == "canceled"
    assert now["cancellation_details"]["reason"] == "payment_failed"
    assert now["ended_at"] == int(FROZEN_AT)
    with pytest.raises(SandboxHTTPError) as refused:
        admin.reactivate_subscription(sub["id"])  # Stripe cannot revive a canceled subscription
    assert refused.value.status == 400


def test_deleting_a_customer_cancels_its_live_subscriptions_first(api: Http, admin: SandboxAdmin) -> None:
    live = api.get("/v1/subscriptions", params={"status": "active", "limit": 1}, bearer=SAMPLE_STRIPE_KEY)
    sub = live.body["data"][0]
    result = admin.delete_object("customers", sub["customer"])
    assert [e["type"] for e in result["events"]][-1] == "customer.deleted"
    assert "customer.subscription.deleted" in [e["type"] for e in result["events"]]
    after = api.get(f"/v1/subscriptions/{sub['id']}", bearer=SAMPLE_STRIPE_KEY).body
    assert after["status"] == "canceled"


def test_paying_an_invoice_after_failed_attempts(api: Http, admin: SandboxAdmin) -> None:
    open_invoice = api.get("/v1/invoices", params={"status": "open", "limit": 1}, bearer=SAMPLE_STRIPE_KEY)
    invoice = open_invoice.body["data"][0]
    result = admin.pay_invoice(invoice["id"], failed_attempts=2)
    kinds = [e["type"] for e in result["events"] if e["type"].startswith("invoice.")]
    assert kinds == [
        "invoice.updated",
        "invoice.payment_failed",
        "invoice.updated",
        "invoice.payment_failed",
        "invoice.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    paid = api.get(f"/v1/invoices/{invoice['id']}", bearer=SAMPLE_STRIPE_KEY).body
    assert paid["status"] == "paid"
    assert paid["amount_paid"] == invoice["amount_due"]
    assert paid["attempt_count"] == invoice["attempt_count"] + 3
    assert paid["status_transitions"]["paid_at"] == int(FROZEN_AT)
    with pytest.raises(SandboxHTTPError):
        admin.pay_invoice(invoice["id"])


def test_catalog_changes_and_deletions(api: Http, admin: SandboxAdmin) -> None:
    coupon = admin.create_object("coupons", {"amount_off": 500, "currency": "usd"})["object"]
    admin.update_object("coupons", coupon["id"], {"name": "Five off"})
    admin.delete_object("coupons", coupon["id"])
    plan = api.get("/v1/plans", params={"limit": 1}, bearer=SAMPLE_STRIPE_KEY).body["data"][0]
    admin.update_object("plans", plan["id"], {"active": False})
    kinds = [e["type"] for e in events(api, ("limit", 100))["data"]]
    assert kinds == ["plan.updated", "coupon.deleted", "coupon.updated", "coupon.created"]
    assert api.get(f"/v1/coupons/{coupon['id']}", bearer=SAMPLE_STRIPE_KEY).body["deleted"] is True
    with pytest.raises(SandboxHTTPError) as missing:
        admin.update_object("coupons", coupon["id"], {"name": "gone"})
    assert missing.value.status == 404


def test_events_use_the_auth_faults_and_errors_of_other_endpoints(api: Http, admin: SandboxAdmin) -> None:
    assert api.get("/v1/events").status == 401
    admin.add_fault("/v1/events", status=503, count=1)
    assert api.get("/v1/events", bearer=SAMPLE_STRIPE_KEY).status == 503
    assert api.get("/v1/events", bearer=SAMPLE_STRIPE_KEY).status == 200
    assert admin.stats()["by_endpoint"]["GET /v1/events"] == 3


def _oauth_token(api: Http, base_url: str) -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": SAMPLE_STRIPE_CLIENT_ID,
            "scope": "read_write",
            "redirect_uri": "http://localhost/cb",
        }
    )
    location = authorize_without_browser(f"{base_url}/oauth/authorize?{query}")
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    reply = api.request(
        "POST",
        "/oauth/token",
        form={
            "grant_type": "authorization_code",
            "code": code,
            "client_secret": SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        },
    )
    assert reply.status == 200, reply.text
    token: str = reply.body["access_token"]
    return token


def test_connect_reads_carry_the_account_and_deauthorization_revokes_access(
    api: Http, admin: SandboxAdmin, frozen_server: BackgroundServer
) -> None:
    token = _oauth_token(api, frozen_server.url)
    admin.create_object("customers", {"email": "connect@example.com"})
    through_token = events(api, key=token)["data"][0]
    assert through_token["account"] == SAMPLE_STRIPE_ACCOUNT_ID
    on_behalf = api.get(
        "/v1/events",
        bearer=SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        headers={"Stripe-Account": SAMPLE_STRIPE_ACCOUNT_ID},
    )
    assert on_behalf.body["data"][0]["account"] == SAMPLE_STRIPE_ACCOUNT_ID

    result = admin.deauthorize(SAMPLE_STRIPE_ACCOUNT_ID)
    assert result["was_connected"] is True
    assert result["event"]["type"] == "account.application.deauthorized"
    assert result["event"]["data"]["object"]["id"] == SAMPLE_STRIPE_CLIENT_ID
    assert api.get("/v1/events", bearer=token).status == 401
    assert events(api)["data"][0]["type"] == "account.application.deauthorized"
    assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200  # its own key still works

    admin.deauthorize(SAMPLE_STRIPE_ACCOUNT_ID, revoke_keys=True)
    assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 401
    admin.reset()
    assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200


def test_api_writes_record_events_too(api: Http) -> None:
    created = api.request(
        "POST",
        "/v1/coupons",
        bearer=SAMPLE_STRIPE_KEY,
        form={"percent_off": "20", "duration": "once"},
        headers={"Idempotency-Key": "coupon-key-1"},
    )
    assert created.status == 200, created.text
    sub = api.get("/v1/subscriptions", params={"status": "active", "limit": 1}, bearer=SAMPLE_STRIPE_KEY)
    sub_id = sub.body["data"][0]["id"]
    applied = api.request(
        "POST", f"/v1/subscriptions/{sub_id}", bearer=SAMPLE_STRIPE_KEY, form={"coupon": created.body["id"]}
    )
    assert applied.status == 200, applied.text
    updated, coupon = events(api)["data"]
    assert coupon["type"] == "coupon.created"
    assert coupon["data"]["object"]["id"] == created.body["id"]
    assert coupon["request"] == {"id": created.headers["Request-Id"], "idempotency_key": "coupon-key-1"}
    assert updated["request"]["id"] == applied.headers["Request-Id"]
    assert updated["request"]["idempotency_key"] is None
    assert updated["type"] == "customer.subscription.updated"
    assert updated["data"]["object"]["discount"]["coupon"]["id"] == created.body["id"]
    assert updated["data"]["previous_attributes"]["discount"] != updated["data"]["object"]["discount"]


def test_a_burst_of_changes_records_an_event_each(api: Http, admin: SandboxAdmin) -> None:
    burst = admin.touch_objects("customers", 30, {"description": "burst"})
    assert burst["touched"] == 30
    assert len(set(burst["object_ids"])) == 12  # the 12 customers, in turn
    listed = [e["id"] for e in events(api, ("limit", 100), ("type", "customer.updated"))["data"]]
    assert listed == burst["event_ids"][::-1]
    first = api.get(f"/v1/events/{burst['event_ids'][0]}", bearer=SAMPLE_STRIPE_KEY).body
    assert first["data"]["object"]["description"] == "burst"
    assert first["data"]["object"]["metadata"]["sandbox_touch"] == "0"


def test_a_rolled_key_replaces_the_old_one_for_the_same_account(api: Http, admin: SandboxAdmin) -> None:
    rolled = admin.roll_key()

    assert rolled["account"] == SAMPLE_STRIPE_ACCOUNT_ID
    new_key = rolled["key"]
    assert new_key.startswith("sk_test_")
    assert new_key != SAMPLE_STRIPE_KEY
    assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 401
    account = api.get("/v1/account", bearer=new_key)
    assert (account.status, account.body["id"]) == (200, SAMPLE_STRIPE_ACCOUNT_ID)
    admin.reset()
    assert api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200
    assert api.get("/v1/customers", bearer=new_key).status == 401


def test_a_marked_burst_names_each_change_on_the_object_and_says_when_it_was_made(
    api: Http, admin: SandboxAdmin
) -> None:
    before = time.time()
    burst = admin.touch_objects("customers", 14, mark="name")
    after = time.time()
    assert burst["touched"] == 14
    times = burst["changed_at"]
    assert len(times) == 14
    assert before <= times[0] <= times[-1] <= after
    assert times == sorted(times)
    # objects are reused in turn: the first customer's last change is the 13th (n = 12)
    first_id = burst["object_ids"][0]
    customer = api.get(f"/v1/customers/{first_id}", bearer=SAMPLE_STRIPE_KEY).body
    assert customer["name"] == "12"
    second = api.get(f"/v1/customers/{burst['object_ids'][1]}", bearer=SAMPLE_STRIPE_KEY).body
    assert second["name"] == "13"
