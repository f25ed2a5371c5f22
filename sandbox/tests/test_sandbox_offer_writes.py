"""The fakes accept churn-prevention writes as Stripe and Chargebee do: parameters, errors, idempotency
keys, read-only keys refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe as stripe_sdk
from sandbox.server import BackgroundServer
from sandbox_kit import Http

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_PC1_SITE,
    SAMPLE_CHARGEBEE_READ_ONLY_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_RESTRICTED_KEY,
    Dataset,
)

SITE = f"/sites/{SAMPLE_CHARGEBEE_SITE}/api/v2"
PC1 = f"/sites/{SAMPLE_CHARGEBEE_PC1_SITE}/api/v2"


def stripe_sub(dataset: Dataset, status: str) -> dict[str, Any]:
    return next(s for s in dataset.stripe["subscriptions"] if s["status"] == status)


def chargebee_sub(api: Http, root: str, key: str, status: str) -> dict[str, Any]:
    reply = api.get(f"{root}/subscriptions", params={"status[is]": status, "limit": 1}, basic=key)
    return dict(reply.body["list"][0]["subscription"])


# --- Stripe ----------------------------------------------------------------------------------


def test_stripe_sdk_creates_a_coupon_and_applies_it_once_per_idempotency_key(
    stripe_server: BackgroundServer, stripe_api: Http, dataset: Dataset
) -> None:
    sdk = stripe_sdk.StripeClient(
        SAMPLE_STRIPE_KEY, base_addresses={"api": stripe_server.url}, max_network_retries=0
    )
    coupon = sdk.v1.coupons.create(
        {"percent_off": 20, "duration": "repeating", "duration_in_months": 3},
        {"idempotency_key": "coupon-1"},
    )
    again = sdk.v1.coupons.create(
        {"percent_off": 20, "duration": "repeating", "duration_in_months": 3},
        {"idempotency_key": "coupon-1"},
    )
    assert again.id == coupon.id
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    sub = stripe_sub(dataset, "active")
    updated = sdk.v1.subscriptions.update(
        sub["id"], {"discounts": [{"coupon": coupon.id}]}, {"idempotency_key": "apply-1"}
    )
    assert updated.to_dict()["discount"]["coupon"]["id"] == coupon.id
    read = stripe_api.get(f"/v1/subscriptions/{sub['id']}", bearer=SAMPLE_STRIPE_KEY).body
    assert read["discount"]["coupon"]["percent_off"] == 20
    with pytest.raises(stripe_sdk.IdempotencyError):
        sdk.v1.subscriptions.update(
            sub["id"], {"discounts": [{"coupon": "VIP25"}]}, {"idempotency_key": "apply-1"}
        )


def test_stripe_trial_end_moves_the_billing_date(stripe_api: Http, dataset: Dataset) -> None:
    sub = stripe_sub(dataset, "active")
    later = int(time.time()) + 30 * 86_400
    reply = stripe_api.request(
        "POST",
        f"/v1/subscriptions/{sub['id']}",
        bearer=SAMPLE_STRIPE_KEY,
        form={"trial_end": str(later), "proration_behavior": "none"},
    )
    assert reply.status == 200, reply.text
    assert reply.body["trial_end"] == later
    assert reply.body["current_period_end"] == later
    assert reply.body["status"] == "trialing"


@pytest.mark.parametrize(
    ("form", "status", "param"),
    [
        ({"percent_off": "101", "duration": "once"}, 400, "percent_off"),
        ({"amount_off": "500", "duration": "once"}, 400, "currency"),
        ({"amount_off": "500", "currency": "xyz", "duration": "once"}, 400, "currency"),
        ({"percent_off": "10", "duration": "repeating"}, 400, "duration_in_months"),
        ({"percent_off": "10", "duration": "once", "colour": "red"}, 400, "colour"),
    ],
)
def test_stripe_coupon_validation(stripe_api: Http, form: dict[str, str], status: int, param: str) -> None:
    reply = stripe_api.request("POST", "/v1/coupons", bearer=SAMPLE_STRIPE_KEY, form=form)
    assert reply.status == status, reply.text
    assert reply.body["error"]["param"] == param
    assert reply.body["error"]["type"] == "invalid_request_error"


def test_stripe_subscription_errors(stripe_api: Http, dataset: Dataset) -> None:
    missing = stripe_api.request("POST", "/v1/subscriptions/sub_missing", bearer=SAMPLE_STRIPE_KEY, form={})
    assert missing.status == 404
    assert missing.body["error"]["code"] == "resource_missing"
    sub = stripe_sub(dataset, "active")
    no_coupon = stripe_api.request(
        "POST", f"/v1/subscriptions/{sub['id']}", bearer=SAMPLE_STRIPE_KEY, form={"coupon": "NOPE"}
    )
    assert no_coupon.status == 400
    assert (no_coupon.body["error"]["code"], no_coupon.body["error"]["param"]) == (
        "resource_missing",
        "coupon",
    )
    ended = stripe_sub(dataset, "canceled")
    refused = stripe_api.request(
        "POST", f"/v1/subscriptions/{ended['id']}", bearer=SAMPLE_STRIPE_KEY, form={"coupon": "VIP25"}
    )
    assert refused.status == 400


def test_stripe_read_only_key_may_not_write(stripe_api: Http, dataset: Dataset) -> None:
    reply = stripe_api.request(
        "POST", "/v1/coupons", bearer=SAMPLE_STRIPE_RESTRICTED_KEY, form={"percent_off": "5"}
    )
    assert reply.status == 403
    assert "rak_coupon_write" in reply.body["error"]["message"]
    listed = stripe_api.get("/v1/coupons", params={"limit": 100}, bearer=SAMPLE_STRIPE_KEY).body["data"]
    assert len(listed) == len(dataset.stripe["coupons"])


# --- Chargebee -------------------------------------------------------------------------------


def test_chargebee_pc2_coupon_and_update_for_items_with_idempotency(chargebee_api: Http) -> None:
    form = {
        "id": "SAVE10",
        "name": "Save 10%",
        "discount_type": "percentage",
        "discount_percentage": "10",
        "duration_type": "limited_period",
        "period": "3",
        "period_unit": "month",
    }
    headers = {"chargebee-idempotency-key": "cb-coupon-1"}
    first = chargebee_api.request(
        "POST", f"{SITE}/coupons/create_for_items", basic=SAMPLE_CHARGEBEE_KEY, form=form, headers=headers
    )
    assert first.status == 200, first.text
    again = chargebee_api.request(
        "POST", f"{SITE}/coupons/create_for_items", basic=SAMPLE_CHARGEBEE_KEY, form=form, headers=headers
    )
    assert again.body == first.body
    assert again.headers["chargebee-idempotency-replayed"] == "true"
    other = chargebee_api.request(
        "POST",
        f"{SITE}/coupons/create_for_items",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={**form, "discount_percentage": "11"},
        headers=headers,
    )
    assert other.status == 409
    sub = chargebee_sub(chargebee_api, SITE, SAMPLE_CHARGEBEE_KEY, "active")
    applied = chargebee_api.request(
        "POST",
        f"{SITE}/subscriptions/{sub['id']}/update_for_items",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={"coupon_ids[0]": "SAVE10"},
    )
    assert applied.status == 200, applied.text
    body = applied.body["subscription"]
    assert "SAVE10" in [c["coupon_id"] for c in body["coupons"]]
    assert body["resource_version"] > sub["resource_version"]
    pc1_route = chargebee_api.request(
        "POST",
        f"{SITE}/subscriptions/{sub['id']}",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={"coupon_ids[0]": "SAVE10"},
    )
    assert pc1_route.body["api_error_code"] == "configuration_incompatible"


def test_chargebee_pc1_coupon_and_subscription_update(chargebee_api: Http) -> None:
    created = chargebee_api.request(
        "POST",
        f"{PC1}/coupons",
        basic=SAMPLE_CHARGEBEE_PC1_KEY,
        form={
            "id": "OFF5",
            "name": "5 off",
            "discount_type": "fixed_amount",
            "discount_amount": "500",
            "currency_code": "USD",
            "duration_type": "forever",
        },
    )
    assert created.status == 200, created.text
    sub = chargebee_sub(chargebee_api, PC1, SAMPLE_CHARGEBEE_PC1_KEY, "active")
    applied = chargebee_api.request(
        "POST",
        f"{PC1}/subscriptions/{sub['id']}",
        basic=SAMPLE_CHARGEBEE_PC1_KEY,
        form={"coupon_ids[0]": "OFF5"},
    )
    assert applied.status == 200, applied.text
    assert applied.body["subscription"]["coupons"][-1]["coupon_id"] == "OFF5"


def test_chargebee_change_term_end_moves_a_trial(chargebee_api: Http) -> None:
    sub = chargebee_sub(chargebee_api, SITE, SAMPLE_CHARGEBEE_KEY, "in_trial")
    later = int(time.time()) + 20 * 86_400
    reply = chargebee_api.request(
        "POST",
        f"{SITE}/subscriptions/{sub['id']}/change_term_end",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={"term_ends_at": str(later)},
    )
    assert reply.status == 200, reply.text
    assert reply.body["subscription"]["trial_end"] == later
    past = chargebee_api.request(
        "POST",
        f"{SITE}/subscriptions/{sub['id']}/change_term_end",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={"term_ends_at": "1000"},
    )
    assert (past.status, past.body["api_error_code"]) == (400, "param_wrong_value")


def test_chargebee_errors(chargebee_api: Http) -> None:
    missing = chargebee_api.request(
        "POST", f"{SITE}/subscriptions/nope/update_for_items", basic=SAMPLE_CHARGEBEE_KEY, form={}
    )
    assert (missing.status, missing.body["api_error_code"]) == (404, "resource_not_found")
    cancelled = chargebee_sub(chargebee_api, SITE, SAMPLE_CHARGEBEE_KEY, "cancelled")
    ended = chargebee_api.request(
        "POST",
        f"{SITE}/subscriptions/{cancelled['id']}/update_for_items",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={"coupon_ids[0]": "VIP25"},
    )
    assert (ended.status, ended.body["api_error_code"]) == (400, "invalid_state_for_request")
    active = chargebee_sub(chargebee_api, SITE, SAMPLE_CHARGEBEE_KEY, "active")
    unknown = chargebee_api.request(
        "POST",
        f"{SITE}/subscriptions/{active['id']}/update_for_items",
        basic=SAMPLE_CHARGEBEE_KEY,
        form={"coupon_ids[0]": "NOPE"},
    )
    assert (unknown.status, unknown.body["param"]) == (404, "coupon_ids[0]")


def test_chargebee_read_only_key_is_refused_before_its_parameters_are_read(chargebee_api: Http) -> None:
    """What lets a key's type be told without changing anything: an empty coupon creation."""
    read_only = chargebee_api.request(
        "POST", f"{SITE}/coupons/create_for_items", basic=SAMPLE_CHARGEBEE_READ_ONLY_KEY, form={}
    )
    assert (read_only.status, read_only.body["api_error_code"]) == (403, "api_authorization_failed")
    full = chargebee_api.request(
        "POST", f"{SITE}/coupons/create_for_items", basic=SAMPLE_CHARGEBEE_KEY, form={}
    )
    assert (full.status, full.body["api_error_code"]) == (400, "param_wrong_value")
    assert chargebee_api.get(f"{SITE}/customers", basic=SAMPLE_CHARGEBEE_READ_ONLY_KEY).status == 200
