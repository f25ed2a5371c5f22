"""The fake Chargebee's API v2 over real HTTP: sites, keys, offsets, sorting, filters, errors."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_kit import Http

from sandbox import (
    SAMPLE_CHARGEBEE_BLOCKED_KEY,
    SAMPLE_CHARGEBEE_BLOCKED_SITE,
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_LIVE_SITE,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_PC1_SITE,
    SAMPLE_CHARGEBEE_RESTRICTED_KEY,
    SAMPLE_CHARGEBEE_SITE,
    Dataset,
    live_chargebee_key,
)

SITE = f"/sites/{SAMPLE_CHARGEBEE_SITE}/api/v2"
KEY = SAMPLE_CHARGEBEE_KEY
ENTRY = {"customers": "customer", "subscriptions": "subscription", "invoices": "invoice", "coupons": "coupon"}
ENTRY |= {"items": "item", "item_prices": "item_price", "plans": "plan", "addons": "addon"}


def walk(
    api: Http, resource: str, params: dict[str, Any] | None = None, *, root: str = SITE, key: str = KEY
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every entry of a list, following next_offset; returns (entries, offsets seen)."""
    entries: list[dict[str, Any]] = []
    offsets: list[str] = []
    offset: str | None = None
    while True:
        query = dict(params or {})
        if offset is not None:
            query["offset"] = offset
        reply = api.get(f"{root}/{resource}", params=query, basic=key)
        assert reply.status == 200, reply.text
        body = reply.body
        assert set(body) <= {"list", "next_offset"}
        entries += body["list"]
        if "next_offset" not in body:
            return entries, offsets
        offset = body["next_offset"]
        assert isinstance(offset, str)
        offsets.append(offset)


def objects(entries: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    return [entry[ENTRY[resource]] for entry in entries]


def live(dataset: Dataset, resource: str) -> list[dict[str, Any]]:
    return [o for o in dataset.chargebee[resource] if not o.get("deleted")]


@pytest.mark.parametrize(
    "resource", ["customers", "subscriptions", "invoices", "coupons", "items", "item_prices"]
)
def test_pagination_returns_every_object_once(chargebee_api: Http, dataset: Dataset, resource: str) -> None:
    entries, offsets = walk(chargebee_api, resource, {"limit": 9})
    found = objects(entries, resource)
    assert found == live(dataset, resource)  # default order: newest first, field by field
    assert len({o["id"] for o in found}) == len(found)
    assert len(offsets) == -(-len(found) // 9) - 1


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sort_by(chargebee_api: Http, dataset: Dataset, field: str, direction: str) -> None:
    entries, _ = walk(chargebee_api, "subscriptions", {"limit": 50, f"sort_by[{direction}]": field})
    found = objects(entries, "subscriptions")
    expected = sorted(
        live(dataset, "subscriptions"), key=lambda s: (s[field], s["id"]), reverse=direction == "desc"
    )
    assert found == expected


def test_subscription_entries_carry_their_customer(chargebee_api: Http, dataset: Dataset) -> None:
    customers = {c["id"]: c for c in dataset.chargebee["customers"]}
    entries, _ = walk(chargebee_api, "subscriptions", {"limit": 100})
    for entry in entries:
        assert set(entry) == {"subscription", "customer"}
        assert entry["customer"] == customers[entry["subscription"]["customer_id"]]


def test_created_at_filters(chargebee_api: Http, dataset: Dataset) -> None:
    customers = live(dataset, "customers")
    a, b = customers[40]["created_at"], customers[10]["created_at"]

    def find(params: dict[str, Any]) -> list[dict[str, Any]]:
        entries, _ = walk(chargebee_api, "customers", {"limit": 7, **params})
        return objects(entries, "customers")

    assert find({"created_at[after]": a}) == [c for c in customers if c["created_at"] > a]
    assert find({"created_at[before]": b}) == [c for c in customers if c["created_at"] < b]
    assert find({"created_at[between]": f"[{a},{b}]"}) == [c for c in customers if a <= c["created_at"] <= b]
    ascending = find({"created_at[after]": a, "sort_by[asc]": "created_at"})
    assert ascending == sorted(
        (c for c in customers if c["created_at"] > a), key=lambda c: (c["created_at"], c["id"])
    )


def test_status_filters(chargebee_api: Http, dataset: Dataset) -> None:
    subs = live(dataset, "subscriptions")
    cancelled, _ = walk(chargebee_api, "subscriptions", {"status[is]": "cancelled", "limit": 100})
    assert objects(cancelled, "subscriptions") == [s for s in subs if s["status"] == "cancelled"]
    some, _ = walk(
        chargebee_api, "subscriptions", {"status[in]": '["in_trial","non_renewing"]', "limit": 100}
    )
    assert objects(some, "subscriptions") == [s for s in subs if s["status"] in ("in_trial", "non_renewing")]
    paid, _ = walk(chargebee_api, "invoices", {"status[is_not]": "paid", "limit": 100})
    assert objects(paid, "invoices") == [i for i in live(dataset, "invoices") if i["status"] != "paid"]


def test_include_deleted(chargebee_api: Http, dataset: Dataset) -> None:
    deleted = [c for c in dataset.chargebee["customers"] if c["deleted"]]
    assert deleted, "the sample data has deleted customers"
    everything, _ = walk(chargebee_api, "customers", {"include_deleted": "true", "limit": 100})
    assert objects(everything, "customers") == dataset.chargebee["customers"]


def test_sample_objects_look_like_chargebee(dataset: Dataset) -> None:
    subs = dataset.chargebee["subscriptions"]
    assert {"future", "in_trial", "active", "non_renewing", "paused", "cancelled"} <= {
        s["status"] for s in subs
    }
    cancelled = [s for s in subs if s["status"] == "cancelled"]
    assert all("cancelled_at" in s for s in cancelled)
    assert any("cancel_reason_code" in s for s in cancelled)
    assert all("cancelled_at" not in s for s in subs if s["status"] == "active")  # unset means absent
    assert {u for s in subs for u in [s["billing_period_unit"]]} >= {"month", "year", "week"}
    items = [i for s in subs for i in s["subscription_items"]]
    assert {"item_price_id", "item_type", "quantity", "unit_price"} <= set(items[0])
    assert any(i["quantity"] > 1 for i in items)
    assert any(s.get("coupons") for s in subs)
    assert {s["currency_code"] for s in subs} == {"USD", "EUR"}
    coupons = dataset.chargebee["coupons"]
    assert {c["discount_type"] for c in coupons} == {"percentage", "fixed_amount"}
    invoice = dataset.chargebee["invoices"][0]
    assert {"total", "amount_paid", "amount_due", "status", "subscription_id", "customer_id", "date"} <= set(
        invoice
    )


def test_product_catalog_1_site(chargebee_api: Http) -> None:
    root = f"/sites/{SAMPLE_CHARGEBEE_PC1_SITE}/api/v2"
    plans, _ = walk(chargebee_api, "plans", {"limit": 100}, root=root, key=SAMPLE_CHARGEBEE_PC1_KEY)
    assert {"id", "price", "period", "period_unit", "currency_code"} <= set(plans[0]["plan"])
    addons, _ = walk(chargebee_api, "addons", root=root, key=SAMPLE_CHARGEBEE_PC1_KEY)
    assert addons
    subs, _ = walk(chargebee_api, "subscriptions", {"limit": 5}, root=root, key=SAMPLE_CHARGEBEE_PC1_KEY)
    sub = subs[0]["subscription"]
    assert {"plan_id", "plan_unit_price", "plan_quantity", "billing_period", "billing_period_unit"} <= set(
        sub
    )
    wrong = chargebee_api.get(f"{root}/items", basic=SAMPLE_CHARGEBEE_PC1_KEY)
    assert wrong.status == 400
    assert wrong.body["api_error_code"] == "configuration_incompatible"
    assert (
        chargebee_api.get(f"{SITE}/plans", basic=KEY).body["api_error_code"] == "configuration_incompatible"
    )


def test_live_site(chargebee_api: Http) -> None:
    reply = chargebee_api.get(
        f"/sites/{SAMPLE_CHARGEBEE_LIVE_SITE}/api/v2/customers", basic=live_chargebee_key()
    )
    assert reply.status == 200


@pytest.mark.parametrize(
    ("path", "key", "status", "code"),
    [
        ("/sites/nosuchsite-test/api/v2/customers", KEY, 404, "site_not_found"),
        (
            f"/sites/{SAMPLE_CHARGEBEE_BLOCKED_SITE}/api/v2/customers",
            SAMPLE_CHARGEBEE_BLOCKED_KEY,
            403,
            "request_blocked",
        ),
        (f"{SITE}/customers", "test_wrongkey", 401, "api_authentication_failed"),
        (f"{SITE}/customers", None, 401, "api_authentication_failed"),
        (f"{SITE}/invoices", SAMPLE_CHARGEBEE_RESTRICTED_KEY, 403, "api_authorization_failed"),
        (f"{SITE}/customers?limit=101", KEY, 400, "param_wrong_value"),
        (f"{SITE}/customers?limit=0", KEY, 400, "param_wrong_value"),
        (f"{SITE}/customers?offset=garbage", KEY, 400, "param_wrong_value"),
        (f"{SITE}/customers?sort_by[asc]=email", KEY, 400, "param_wrong_value"),
        (f"{SITE}/invoices?created_at[after]=1", KEY, 400, "param_wrong_value"),
        (f"{SITE}/customers/no-such-customer", KEY, 404, "resource_not_found"),
        (f"{SITE}/nothing_here", KEY, 404, "resource_not_found"),
    ],
)
def test_errors(chargebee_api: Http, path: str, key: str | None, status: int, code: str) -> None:
    reply = chargebee_api.get(path, basic=key)
    assert reply.status == status
    body = reply.body
    assert body["api_error_code"] == code
    assert body["http_status_code"] == status
    assert body["message"]
    assert body["type"]
    if key:
        assert key not in reply.text


def test_authentication_failure_body(chargebee_api: Http) -> None:
    body = chargebee_api.get(f"{SITE}/customers", basic="test_wrong").body
    assert body["message"] == "Sorry, authentication failed. Invalid api key"


def test_restricted_key_may_read_other_resources(chargebee_api: Http) -> None:
    assert chargebee_api.get(f"{SITE}/customers", basic=SAMPLE_CHARGEBEE_RESTRICTED_KEY).status == 200


def test_retrieve(chargebee_api: Http, dataset: Dataset) -> None:
    sub = dataset.chargebee["subscriptions"][0]
    body = chargebee_api.get(f"{SITE}/subscriptions/{sub['id']}", basic=KEY).body
    assert body["subscription"] == sub
    assert body["customer"]["id"] == sub["customer_id"]
