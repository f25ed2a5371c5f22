"""The fake Stripe's read API over real HTTP: lists, cursors, filters, errors, headers."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_kit import Http

from sandbox import (
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_LIMITED_KEY,
    SAMPLE_STRIPE_NO_ACCOUNT_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_ID,
    SAMPLE_STRIPE_OTHER_ACCOUNT_KEY,
    SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    SAMPLE_STRIPE_PUBLISHABLE_KEY,
    SAMPLE_STRIPE_RESTRICTED_KEY,
    Dataset,
    live_stripe_key,
)

KEY = SAMPLE_STRIPE_KEY
RESOURCES = ["customers", "products", "prices", "plans", "coupons", "subscriptions", "invoices"]


def walk(api: Http, resource: str, key: str = KEY, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every object of a list, following starting_after; returns (objects, pages)."""
    objects: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = dict(params)
        if cursor:
            query["starting_after"] = cursor
        reply = api.get(f"/v1/{resource}", params=query, bearer=key)
        assert reply.status == 200, reply.text
        body = reply.body
        assert body["object"] == "list"
        assert body["url"] == f"/v1/{resource}"
        objects += body["data"]
        pages += 1
        if not body["has_more"]:
            return objects, pages
        cursor = body["data"][-1]["id"]


def expected(dataset: Dataset, resource: str) -> list[dict[str, Any]]:
    objects = dataset.stripe[resource]
    if resource == "subscriptions":
        return [o for o in objects if o["status"] != "canceled"]
    return objects


@pytest.mark.parametrize("resource", RESOURCES)
def test_pagination_returns_every_object_once_newest_first(
    stripe_api: Http, dataset: Dataset, resource: str
) -> None:
    objects, pages = walk(stripe_api, resource, limit=7)

    ids = [o["id"] for o in objects]
    assert len(ids) == len(set(ids))
    assert objects == expected(dataset, resource)  # field by field, in API order
    keys = [(o["created"], o["id"]) for o in objects]
    assert keys == sorted(keys, reverse=True)
    assert pages == -(-len(objects) // 7)


def test_default_limit_is_10_and_ending_before_walks_back(stripe_api: Http, dataset: Dataset) -> None:
    first = stripe_api.get("/v1/invoices", bearer=KEY).body
    second = stripe_api.get(
        "/v1/invoices", params={"starting_after": first["data"][-1]["id"]}, bearer=KEY
    ).body
    assert len(first["data"]) == 10
    back = stripe_api.get("/v1/invoices", params={"ending_before": second["data"][0]["id"]}, bearer=KEY).body

    assert back["data"] == first["data"]
    assert back["has_more"] is False
    assert [o["id"] for o in first["data"] + second["data"]] == [
        o["id"] for o in dataset.stripe["invoices"][:20]
    ]


def test_subscriptions_exclude_canceled_unless_asked(stripe_api: Http, dataset: Dataset) -> None:
    everything = dataset.stripe["subscriptions"]
    canceled = [s for s in everything if s["status"] == "canceled"]
    assert canceled, "the sample data has canceled subscriptions"

    default, _ = walk(stripe_api, "subscriptions", limit=100)
    all_, _ = walk(stripe_api, "subscriptions", limit=100, status="all")
    only_canceled, _ = walk(stripe_api, "subscriptions", limit=100, status="canceled")
    ended, _ = walk(stripe_api, "subscriptions", limit=100, status="ended")

    assert all(s["status"] != "canceled" for s in default)
    assert all_ == everything
    assert only_canceled == canceled
    assert {s["status"] for s in ended} <= {"canceled", "incomplete_expired"}
    assert len(default) + len(canceled) == len(everything)


def test_canceled_subscriptions_carry_cancellation_details(dataset: Dataset) -> None:
    canceled = [s for s in dataset.stripe["subscriptions"] if s["status"] == "canceled"]
    for sub in canceled:
        assert sub["canceled_at"] is not None
        assert sub["ended_at"] is not None
        assert set(sub["cancellation_details"]) == {"reason", "feedback", "comment"}
    assert {s["cancellation_details"]["reason"] for s in canceled} >= {
        "cancellation_requested",
        "payment_failed",
    }


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"created[gt]": "T"}, lambda c, t: c > t),
        ({"created[gte]": "T"}, lambda c, t: c >= t),
        ({"created[lt]": "T"}, lambda c, t: c < t),
        ({"created[lte]": "T"}, lambda c, t: c <= t),
        ({"created": "T"}, lambda c, t: c == t),
    ],
)
def test_created_filters(stripe_api: Http, dataset: Dataset, params: dict[str, str], keep: Any) -> None:
    invoices = dataset.stripe["invoices"]
    t = invoices[len(invoices) // 2]["created"]
    query = {k: str(t) for k in params}

    found, _ = walk(stripe_api, "invoices", limit=100, **query)

    assert found == [o for o in invoices if keep(o["created"], t)]
    assert found


def test_created_range_with_cursor(stripe_api: Http, dataset: Dataset) -> None:
    customers = dataset.stripe["customers"]
    lo, hi = customers[-10]["created"], customers[5]["created"]
    found, pages = walk(stripe_api, "customers", limit=3, **{"created[gte]": lo, "created[lt]": hi})
    assert found == [c for c in customers if lo <= c["created"] < hi]
    assert pages > 1


def test_equality_filters(stripe_api: Http, dataset: Dataset) -> None:
    sub = dataset.stripe["subscriptions"][0]
    found, _ = walk(stripe_api, "invoices", limit=100, subscription=sub["id"])
    assert found == [i for i in dataset.stripe["invoices"] if i["subscription"] == sub["id"]]
    mine, _ = walk(stripe_api, "subscriptions", status="all", customer=sub["customer"])
    assert sub in mine
    inactive, _ = walk(stripe_api, "prices", active="false")
    assert inactive
    assert all(p["active"] is False for p in inactive)


def test_expand_customer_in_a_list(stripe_api: Http, dataset: Dataset) -> None:
    reply = stripe_api.get("/v1/subscriptions", params={"limit": 3, "expand[]": "data.customer"}, bearer=KEY)
    customers = {c["id"]: c for c in dataset.stripe["customers"]}
    for sub in reply.body["data"]:
        assert sub["customer"] == customers[sub["customer"]["id"]]


def test_retrieve_one_object(stripe_api: Http, dataset: Dataset) -> None:
    customer = dataset.stripe["customers"][3]
    assert stripe_api.get(f"/v1/customers/{customer['id']}", bearer=KEY).body == customer
    missing = stripe_api.get("/v1/customers/cus_doesnotexist", bearer=KEY)
    assert missing.status == 404
    assert missing.body["error"]["code"] == "resource_missing"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, "greater than or equal to 1"),
        ({"limit": 101}, "less than or equal to 100"),
        ({"limit": "ten"}, "Invalid integer: ten"),
        ({"created[gt]": "yesterday"}, "Invalid integer: yesterday"),
        ({"colour": "blue"}, "Received unknown parameter: colour"),
        ({"starting_after": "cus_a", "ending_before": "cus_b"}, "only specify one"),
    ],
)
def test_invalid_list_requests_answer_400(stripe_api: Http, params: dict[str, Any], message: str) -> None:
    reply = stripe_api.get("/v1/customers", params=params, bearer=KEY)
    assert reply.status == 400
    assert reply.body["error"]["type"] == "invalid_request_error"
    assert message in reply.body["error"]["message"]


def test_unknown_starting_after_is_resource_missing(stripe_api: Http) -> None:
    reply = stripe_api.get("/v1/customers", params={"starting_after": "cus_nope"}, bearer=KEY)
    assert reply.status == 400
    assert reply.body == {
        "error": {
            "code": "resource_missing",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": "No such customer: 'cus_nope'",
            "param": "starting_after",
            "type": "invalid_request_error",
        }
    }


def test_unknown_key_is_401_and_never_echoed(stripe_api: Http) -> None:
    key = "sk_test_NotARealKeyAtAll1234567890abcd"
    reply = stripe_api.get("/v1/customers", bearer=key)
    assert reply.status == 401
    error = reply.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Invalid API Key provided: sk_test_")
    assert error["message"].endswith("abcd")
    assert key not in reply.text


def test_missing_and_publishable_keys_are_401(stripe_api: Http) -> None:
    assert stripe_api.get("/v1/customers").status == 401
    reply = stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_PUBLISHABLE_KEY)
    assert reply.status == 401
    assert "publishable API key" in reply.body["error"]["message"]


def test_restricted_key_without_permission_is_403(stripe_api: Http) -> None:
    assert stripe_api.get("/v1/customers", bearer=SAMPLE_STRIPE_LIMITED_KEY).status == 200
    reply = stripe_api.get("/v1/invoices", bearer=SAMPLE_STRIPE_LIMITED_KEY)
    assert reply.status == 403
    message = reply.body["error"]["message"]
    assert reply.body["error"]["type"] == "invalid_request_error"
    assert "does not have the required permissions for this endpoint on account" in message
    assert SAMPLE_STRIPE_ACCOUNT_ID in message
    assert SAMPLE_STRIPE_LIMITED_KEY not in message
    assert stripe_api.get("/v1/invoices", bearer=SAMPLE_STRIPE_RESTRICTED_KEY).status == 200


def test_least_privilege_key_cannot_read_the_account(stripe_api: Http) -> None:
    reply = stripe_api.get("/v1/account", bearer=SAMPLE_STRIPE_NO_ACCOUNT_KEY)
    assert reply.status == 403
    assert f"on account '{SAMPLE_STRIPE_ACCOUNT_ID}'" in reply.body["error"]["message"]
    assert "rak_accounts_kyc_basic_read" in reply.body["error"]["message"]
    assert stripe_api.get("/v1/subscriptions", bearer=SAMPLE_STRIPE_NO_ACCOUNT_KEY).status == 200


def test_basic_auth_and_account(stripe_api: Http) -> None:
    reply = stripe_api.get("/v1/account", basic=KEY)
    assert reply.status == 200
    account = reply.body
    assert account["id"] == SAMPLE_STRIPE_ACCOUNT_ID
    assert account["object"] == "account"
    assert account["business_profile"]["name"]
    assert {"email", "country", "default_currency"} <= set(account)
    other = stripe_api.get("/v1/account", bearer=SAMPLE_STRIPE_OTHER_ACCOUNT_KEY).body
    assert other["id"] == SAMPLE_STRIPE_OTHER_ACCOUNT_ID


def test_live_key_is_accepted(stripe_api: Http) -> None:
    assert stripe_api.get("/v1/account", bearer=live_stripe_key()).body["id"] == SAMPLE_STRIPE_ACCOUNT_ID


def test_platform_key_needs_a_connection_for_stripe_account(stripe_api: Http) -> None:
    reply = stripe_api.get(
        "/v1/customers",
        bearer=SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        headers={"Stripe-Account": "acct_notconnected"},
    )
    assert reply.status == 403
    assert reply.body["error"]["code"] == "account_invalid"


def test_every_response_has_a_request_id_and_unknown_urls_are_stripe_404s(stripe_api: Http) -> None:
    ok = stripe_api.get("/v1/customers", bearer=KEY)
    bad = stripe_api.get("/v1/customers")
    unknown = stripe_api.get("/v1/charges_of_the_light_brigade", bearer=KEY)
    for reply in (ok, bad, unknown):
        assert (reply.headers.get("Request-Id") or "").startswith("req_")
    assert ok.headers["Request-Id"] != bad.headers["Request-Id"]
    assert unknown.status == 404
    assert "Unrecognized request URL" in unknown.body["error"]["message"]


def test_sample_objects_look_like_stripe(dataset: Dataset) -> None:
    subs = dataset.stripe["subscriptions"]
    item = subs[0]["items"]["data"][0]
    assert set(item["price"]) >= {"id", "product", "unit_amount", "currency", "recurring"}
    assert set(item["price"]["recurring"]) >= {"interval", "interval_count"}
    intervals = {
        (i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])
        for s in subs
        for i in s["items"]["data"]
    }
    assert {("month", 1), ("year", 1)} <= intervals
    assert any(s["discount"] and s["discount"]["coupon"]["percent_off"] for s in subs)
    statuses = {s["status"] for s in subs}
    assert {"active", "canceled", "trialing", "past_due", "paused"} <= statuses
    assert any(i["quantity"] > 1 for s in subs for i in s["items"]["data"])
    assert {s["currency"] for s in subs} == {"usd", "eur"}
    coupons = dataset.stripe["coupons"]
    assert any(c["amount_off"] and c["currency"] for c in coupons)
    assert any(c["duration"] == "repeating" and c["duration_in_months"] for c in coupons)
    invoice = dataset.stripe["invoices"][0]
    assert {"total", "amount_paid", "amount_due", "status", "subscription", "customer"} <= set(invoice)
    assert "paid_at" in invoice["status_transitions"]
    plan = dataset.stripe["plans"][0]
    assert {"amount", "interval", "interval_count", "product"} <= set(plan)
