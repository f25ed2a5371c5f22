"""The fake Chargebee's event history over real HTTP: changes while it runs, `/api/v2/events`, retrieval."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sandbox.events import SandboxClock
from sandbox.server import BackgroundServer
from sandbox_kit import Http

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_SITE,
    SandboxAdmin,
    SandboxHTTPError,
    create_chargebee_app,
    generate_dataset,
    serve_in_thread,
)

API = "/sites/acme-test/api/v2"
STARTED_AT = 1_800_000_000.0


class SteppingClock:
    """Each reading is 0.4 s after the previous one: events spread over seconds, some sharing one."""

    def __init__(self) -> None:
        self.now = STARTED_AT

    def __call__(self) -> float:
        self.now += 0.4
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    app = create_chargebee_app(generate_dataset(customers=12), event_clock=SandboxClock(SteppingClock()))
    server = serve_in_thread(app)
    yield server
    server.stop()


@pytest.fixture
def api(server: BackgroundServer) -> Iterator[Http]:
    client = Http(server.url)
    yield client
    client.close()
    SandboxAdmin(server.url).reset()


@pytest.fixture
def admin(server: BackgroundServer) -> SandboxAdmin:
    return SandboxAdmin(server.url)


def get(
    api: Http, path: str, params: list[tuple[str, Any]] | None = None, key: str = SAMPLE_CHARGEBEE_KEY
) -> Any:
    reply = api.get(API + path, params=params, basic=key)
    assert reply.status == 200, reply.text
    return reply.body


def event_list(api: Http, *params: tuple[str, Any]) -> list[dict[str, Any]]:
    """Every event the parameters select, following next_offset 2 at a time."""
    found: list[dict[str, Any]] = []
    offset: list[tuple[str, Any]] = []
    while True:
        page = get(api, "/events", [("limit", 2), *params, *offset])
        found += [entry["event"] for entry in page["list"]]
        if "next_offset" not in page:
            return found
        offset = [("offset", page["next_offset"])]


def test_customer_changes_are_events_with_growing_resource_versions(api: Http, admin: SandboxAdmin) -> None:
    created = admin.create_object(
        "customers", {"first_name": "Ada", "email": "ada@example.com"}, site="acme-test"
    )
    customer = created["object"]
    admin.update_object("customers", customer["id"], {"email": "ada@lovelace.example"})
    admin.delete_object("customers", customer["id"])

    newest_first = [entry["event"] for entry in get(api, "/events")["list"]]
    assert [e["event_type"] for e in newest_first] == [
        "customer_deleted",
        "customer_changed",
        "customer_created",
    ]
    for event in newest_first:
        assert event["id"].startswith("ev_")
        assert event["object"] == "event"
        assert event["api_version"] == "v2"
        assert event["source"] == "admin_console"
        assert event["webhook_status"] == "not_configured"
        assert isinstance(event["occurred_at"], int)
        assert set(event["content"]) == {"customer"}
    versions = [e["content"]["customer"]["resource_version"] for e in reversed(newest_first)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3
    deleted, changed, first = newest_first
    assert first["content"]["customer"]["email"] == "ada@example.com"  # the state at the time
    assert changed["content"]["customer"]["email"] == "ada@lovelace.example"
    assert deleted["content"]["customer"]["deleted"] is True
    assert changed["content"]["customer"]["updated_at"] >= first["content"]["customer"]["updated_at"]

    one = api.get(f"{API}/events/{changed['id']}", basic=SAMPLE_CHARGEBEE_KEY)
    assert one.status == 200
    assert one.body == {"event": changed}
    listed = get(api, "/customers", [("limit", 100)])["list"]
    assert customer["id"] not in {e["customer"]["id"] for e in listed}
    with_deleted = get(api, "/customers", [("limit", 100), ("include_deleted", "true")])["list"]
    assert customer["id"] in {e["customer"]["id"] for e in with_deleted}


def test_retrieving_every_imported_object_type(api: Http) -> None:
    for resource, name in (
        ("customers", "customer"),
        ("subscriptions", "subscription"),
        ("invoices", "invoice"),
        ("coupons", "coupon"),
        ("items", "item"),
        ("item_prices", "item_price"),
    ):
        first = get(api, f"/{resource}", [("limit", 1)])["list"][0]
        assert get(api, f"/{resource}/{first[name]['id']}") == first
        missing = api.get(f"{API}/{resource}/nope", basic=SAMPLE_CHARGEBEE_KEY)
        assert missing.status == 404
        assert missing.body["api_error_code"] == "resource_not_found"
    subscription = get(api, "/subscriptions", [("limit", 1)])["list"][0]
    assert subscription["customer"]["id"] == subscription["subscription"]["customer_id"]
    legacy = api.get(f"/sites/{SAMPLE_CHARGEBEE_PC1_SITE}/api/v2/plans", params={"limit": 1}, basic="x")
    assert legacy.status == 401
    missing_event = api.get(f"{API}/events/ev_nope", basic=SAMPLE_CHARGEBEE_KEY)
    assert missing_event.status == 404
    assert missing_event.body["api_error_code"] == "resource_not_found"


def test_pagination_sorting_and_filters(api: Http, admin: SandboxAdmin) -> None:
    customer_id = admin.create_object("customers", {"email": "p0@example.com"})["object"]["id"]
    for n in range(1, 7):
        admin.update_object("customers", customer_id, {"email": f"p{n}@example.com"})
    admin.create_object("coupons", {"discount_amount": 500, "currency_code": "USD"})

    everything = event_list(api)
    assert len(everything) == 8
    times = [e["occurred_at"] for e in everything]
    assert times == sorted(times, reverse=True)
    assert len(set(times)) < len(times)  # some share a second, and paging still loses none
    assert len({e["id"] for e in everything}) == 8
    oldest_first = event_list(api, ("sort_by[asc]", "occurred_at"))
    assert [e["id"] for e in oldest_first] == [e["id"] for e in reversed(everything)]

    middle = oldest_first[3]["occurred_at"]
    after = event_list(api, ("sort_by[asc]", "occurred_at"), ("occurred_at[after]", middle))
    assert after
    assert all(e["occurred_at"] > middle for e in after)
    assert len(after) == sum(1 for e in everything if e["occurred_at"] > middle)
    between = event_list(api, ("occurred_at[between]", f"[{middle},{middle}]"))
    assert {e["occurred_at"] for e in between} == {middle}
    assert [e["event_type"] for e in event_list(api, ("event_type[is]", "coupon_created"))] == [
        "coupon_created"
    ]
    chosen = event_list(api, ("event_type[in]", '["customer_created","coupon_created"]'))
    assert [e["event_type"] for e in chosen] == ["coupon_created", "customer_created"]

    for bad in ({"limit": 101}, {"offset": "garbage"}, {"sort_by[asc]": "id"}, {"colour": "red"}):
        refused = api.get(f"{API}/events", params=bad, basic=SAMPLE_CHARGEBEE_KEY)
        assert refused.status == 400, bad
        assert refused.body["api_error_code"] == "param_wrong_value"


def test_subscription_cancel_reactivate_and_schedule(api: Http, admin: SandboxAdmin) -> None:
    customer_id = admin.create_object("customers", {"email": "s@example.com"})["object"]["id"]
    price = get(api, "/item_prices", [("limit", 1), ("status[is]", "active")])["list"][0]["item_price"]
    created = admin.create_object("subscriptions", {"customer_id": customer_id, "item_price_id": price["id"]})
    sub = created["object"]
    assert created["events"][0]["event_type"] == "subscription_created"
    assert created["events"][0]["content"]["customer"]["id"] == customer_id
    assert sub["subscription_items"][0]["item_price_id"] == price["id"]

    cancelled = admin.cancel_subscription(sub["id"])
    assert [e["event_type"] for e in cancelled["events"]] == ["subscription_cancelled"]
    assert get(api, f"/subscriptions/{sub['id']}")["subscription"]["status"] == "cancelled"
    revived = admin.reactivate_subscription(sub["id"])
    assert [e["event_type"] for e in revived["events"]] == ["subscription_reactivated"]
    assert "cancelled_at" not in revived["object"]
    scheduled = admin.cancel_subscription(sub["id"], at_period_end=True)
    assert scheduled["object"]["status"] == "non_renewing"
    assert scheduled["events"][0]["event_type"] == "subscription_cancellation_scheduled"
    kept = admin.reactivate_subscription(sub["id"])
    assert kept["events"][0]["event_type"] == "subscription_scheduled_cancellation_removed"
    assert kept["object"]["status"] == "active"
    versions = [
        e["content"]["subscription"]["resource_version"]
        for e in event_list(api, ("sort_by[asc]", "occurred_at"))
        if "subscription" in e["content"]
    ]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)

    deleted = admin.delete_object("customers", customer_id)
    assert [e["event_type"] for e in deleted["events"]] == ["subscription_deleted", "customer_deleted"]


def test_paying_an_invoice_after_a_failed_attempt(api: Http, admin: SandboxAdmin) -> None:
    due = get(api, "/invoices", [("limit", 1), ("status[is]", "payment_due")])["list"][0]["invoice"]
    result = admin.pay_invoice(due["id"], failed_attempts=1)
    kinds = [e["event_type"] for e in result["events"]]
    assert kinds == ["invoice_updated", "payment_failed", "invoice_updated", "payment_succeeded"]
    assert result["events"][-1]["content"]["invoice"]["status"] == "paid"
    paid = get(api, f"/invoices/{due['id']}")["invoice"]
    assert paid["status"] == "paid"
    assert paid["amount_paid"] == paid["total"]
    assert paid["resource_version"] > due["resource_version"]
    with pytest.raises(SandboxHTTPError):
        admin.pay_invoice(due["id"])


def test_a_deleted_key_answers_401_with_chargebee_s_body_until_reset(api: Http, admin: SandboxAdmin) -> None:
    deleted = admin.delete_key(site="acme-test", key=SAMPLE_CHARGEBEE_KEY)
    assert SAMPLE_CHARGEBEE_KEY not in deleted["deleted"]  # never echoed whole

    refused = api.get(f"{API}/customers", basic=SAMPLE_CHARGEBEE_KEY)

    assert refused.status == 401
    assert refused.body["api_error_code"] == "api_authentication_failed"
    assert refused.body["http_status_code"] == 401
    admin.reset()
    assert api.get(f"{API}/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 200


def test_rolling_a_key_makes_the_old_one_fail(api: Http, admin: SandboxAdmin) -> None:
    rolled = admin.roll_key(site="acme-test")
    assert SAMPLE_CHARGEBEE_KEY not in rolled["revoked"]  # never echoed whole
    assert api.get(f"{API}/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 401
    assert api.get(f"{API}/events", basic=SAMPLE_CHARGEBEE_KEY).status == 401
    assert api.get(f"{API}/customers", basic=rolled["key"]).status == 200
    admin.reset()
    assert api.get(f"{API}/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 200
    assert api.get(f"{API}/customers", basic=rolled["key"]).status == 401


def test_events_share_faults_and_rate_limits(api: Http, admin: SandboxAdmin) -> None:
    admin.add_fault("/events", status=503)
    assert api.get(f"{API}/events", basic=SAMPLE_CHARGEBEE_KEY).status == 503
    assert api.get(f"{API}/events", basic=SAMPLE_CHARGEBEE_KEY).status == 200
    admin.update_settings(rate_limits_per_min={"acme-test": 1})
    assert api.get(f"{API}/events", basic=SAMPLE_CHARGEBEE_KEY).status == 200
    limited = api.get(f"{API}/events", basic=SAMPLE_CHARGEBEE_KEY)
    assert limited.status == 429
    assert limited.body["api_error_code"] == "api_request_limit_exceeded"


def test_api_writes_record_events_with_source_api(api: Http) -> None:
    form = {"id": "SAVE7", "name": "Save 7%", "discount_type": "percentage", "discount_percentage": "7"}
    created = api.request("POST", f"{API}/coupons/create_for_items", basic=SAMPLE_CHARGEBEE_KEY, form=form)
    assert created.status == 200, created.text
    (entry,) = get(api, "/events")["list"]
    assert entry["event"]["event_type"] == "coupon_created"
    assert entry["event"]["source"] == "api"
    assert entry["event"]["content"]["coupon"]["id"] == "SAVE7"
    assert entry["event"]["content"]["coupon"]["resource_version"] > 0


def test_a_burst_of_changes_restamps_each_object(api: Http, admin: SandboxAdmin) -> None:
    before = {
        e["subscription"]["id"]: e["subscription"]
        for e in get(api, "/subscriptions", [("limit", 100)])["list"]
    }
    burst = admin.touch_objects("subscriptions", 5, site="acme-test")
    assert burst["touched"] == 5
    listed = event_list(api, ("event_type[is]", "subscription_changed"))
    assert [e["id"] for e in listed] == burst["event_ids"][::-1]
    for event in listed:
        changed = event["content"]["subscription"]
        assert changed["resource_version"] > before[changed["id"]]["resource_version"]
        assert event["content"]["customer"]["id"] == changed["customer_id"]
