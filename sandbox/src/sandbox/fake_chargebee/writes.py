"""The fake Chargebee's writes for churn-prevention offers.

Product Catalog 1.0: `POST /coupons`, `POST /subscriptions/{id}`; 2.0: `POST /coupons/create_for_items`,
`POST /subscriptions/{id}/update_for_items`; both: `POST /subscriptions/{id}/change_term_end`. As
Chargebee does: form-encoded parameters, its error body, the `chargebee-idempotency-key` header
(a replay carries `chargebee-idempotency-replayed: true`), the other catalog's endpoint refused
with `configuration_incompatible`, and a read-only key refused with 403 `api_authorization_failed`
before its parameters are looked at (so a key's type can be told by an invalid write request that
changes nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.collection import Obj
from sandbox.fake_chargebee.errors import ChargebeeError, authorization_failed, not_found, wrong_value
from sandbox.fake_chargebee.state import API_ROOT, ChargebeeSandbox, SiteState, basic_username
from sandbox.idempotency import SavedAnswer, fingerprint
from sandbox.responses import json_response

IDEMPOTENCY_HEADER = "chargebee-idempotency-key"
REPLAYED_HEADER = "chargebee-idempotency-replayed"
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_COUPON_ID_CHARS = 100
ISO_CURRENCIES = frozenset(
    [
        "AED",
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "CNY",
        "CZK",
        "DKK",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "ILS",
        "INR",
        "JPY",
        "KRW",
        "MXN",
        "NOK",
        "NZD",
        "PLN",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "USD",
        "ZAR",
    ]
)
DURATIONS = ("one_time", "forever", "limited_period")
ENDED_STATUSES = ("cancelled",)

Params = dict[str, str]
Handler = Callable[[SiteState, Params, str], Obj]


def install_chargebee_writes(app: FastAPI, sandbox: ChargebeeSandbox) -> None:
    saved = sandbox.idempotency

    async def write(
        request: Request,
        site: str,
        *,
        resource: str,
        catalog: str | None,
        handler: Handler,
        object_id: str,
    ) -> Response:
        state = sandbox.authorize(request, site, resource)
        key = state.keys.get(basic_username(request) or "")
        if key is None or key.resources is not None:  # a read-only key
            raise authorization_failed()
        if catalog is not None and state.site.catalog_version != catalog:
            raise ChargebeeError(
                400,
                "configuration_incompatible",
                f"This API is not available for sites on Product Catalog {state.site.catalog_version}.",
            )
        pairs = [(k, str(v)) for k, v in (await request.form()).multi_items()]
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        print_ = fingerprint("POST", request.url.path, pairs)
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
                raise wrong_value(IDEMPOTENCY_HEADER, f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
            known = saved.lookup(site, idempotency_key)
            if known is not None:
                if known.fingerprint != print_:
                    raise ChargebeeError(
                        409,
                        "duplicate_request",
                        "The idempotency key was already used with different request parameters.",
                    )
                return json_response(known.body, known.status, {REPLAYED_HEADER: "true"})
        body = handler(state, dict(pairs), object_id)
        if idempotency_key is not None:
            saved.save(site, idempotency_key, SavedAnswer(print_, 200, body))
        return json_response(body, 200)

    def route(path: str, resource: str, catalog: str | None, handler: Handler, name: str) -> None:
        if "{object_id}" in path:

            async def with_id(request: Request, site: str, object_id: str) -> Response:
                return await write(
                    request, site, resource=resource, catalog=catalog, handler=handler, object_id=object_id
                )

            app.add_api_route(API_ROOT + path, with_id, methods=["POST"], name=name)
        else:

            async def without_id(request: Request, site: str) -> Response:
                return await write(
                    request, site, resource=resource, catalog=catalog, handler=handler, object_id=""
                )

            app.add_api_route(API_ROOT + path, without_id, methods=["POST"], name=name)

    def coupons(version: str) -> Handler:
        return lambda state, params, _: _create_coupon(sandbox, state, params, version)

    def update() -> Handler:
        return lambda state, params, object_id: _apply_coupon(sandbox, state, params, object_id)

    route("/coupons", "coupons", "1.0", coupons("1.0"), "create_coupon")
    route("/coupons/create_for_items", "coupons", "2.0", coupons("2.0"), "create_coupon_for_items")
    route("/subscriptions/{object_id}", "subscriptions", "1.0", update(), "update_subscription")
    route(
        "/subscriptions/{object_id}/update_for_items",
        "subscriptions",
        "2.0",
        update(),
        "update_subscription_for_items",
    )
    route(
        "/subscriptions/{object_id}/change_term_end",
        "subscriptions",
        None,
        lambda state, params, object_id: _change_term_end(sandbox, state, params, object_id),
        "change_term_end",
    )


def _unknown(params: Params, allowed: set[str]) -> None:
    for name in params:
        if name not in allowed and not name.startswith("meta_data"):
            raise ChargebeeError(400, "param_not_allowed", f"{name} : is not allowed", param=name)


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise wrong_value(name, "cannot be blank")
    return value


def _integer(params: Params, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise wrong_value(name, "invalid integer value") from None


def _create_coupon(sandbox: ChargebeeSandbox, state: SiteState, params: Params, catalog: str) -> Obj:
    limited = {"duration_month"} if catalog == "1.0" else {"period", "period_unit"}
    _unknown(
        params,
        {
            "id",
            "name",
            "invoice_name",
            "discount_type",
            "discount_amount",
            "discount_percentage",
            "currency_code",
            "duration_type",
            "apply_on",
            "max_redemptions",
            "valid_till",
            *limited,
        },
    )
    coupon_id = _required(params, "id")
    name = _required(params, "name")
    if len(coupon_id) > MAX_COUPON_ID_CHARS:
        raise wrong_value("id", f"cannot be more than {MAX_COUPON_ID_CHARS} characters")
    coupons = state.collections["coupons"]
    if coupons.get(coupon_id) is not None:
        raise ChargebeeError(
            400, "duplicate_entry", f"id : The value {coupon_id} is already present.", param="id"
        )
    discount_type = _required(params, "discount_type")
    coupon: Obj = {"id": coupon_id, "name": name, "invoice_name": params.get("invoice_name") or name}
    coupon |= _discount(params, discount_type)
    duration = params.get("duration_type", "forever")
    if duration not in DURATIONS:
        raise wrong_value("duration_type", "invalid value")
    coupon["duration_type"] = duration
    if duration == "limited_period":
        if catalog == "1.0":
            months = _integer(params, "duration_month")
            if months is None or months < 1:
                raise wrong_value("duration_month", "cannot be blank")
            coupon["duration_month"] = months
        else:
            months = _integer(params, "period")
            if months is None or months < 1:
                raise wrong_value("period", "cannot be blank")
            if params.get("period_unit", "month") != "month":
                raise wrong_value("period_unit", "only month is supported by this sandbox")
            coupon |= {"period": months, "period_unit": "month"}
    now = int(time.time())
    coupon |= {
        "status": "active",
        "apply_discount_on": "not_applicable",
        "apply_on": params.get("apply_on", "invoice_amount"),
        "created_at": now,
        "updated_at": now,
        "resource_version": now * 1000,
        "object": "coupon",
        "redemptions": 0,
        "included_in_mrr": True,
    }
    sandbox.record_change(state.site.name, "coupons", coupon, created=True)
    return {"coupon": coupon}


def _discount(params: Params, discount_type: str) -> Obj:
    if discount_type == "percentage":
        try:
            percentage = float(_required(params, "discount_percentage"))
        except ValueError:
            raise wrong_value("discount_percentage", "invalid decimal value") from None
        if not 0.01 <= percentage <= 100:
            raise wrong_value("discount_percentage", "should be between 0.01 and 100")
        return {"discount_type": "percentage", "discount_percentage": percentage}
    if discount_type == "fixed_amount":
        amount = _integer(params, "discount_amount")
        if amount is None or amount <= 0:
            raise wrong_value("discount_amount", "should be greater than 0")
        currency = _required(params, "currency_code")
        if currency not in ISO_CURRENCIES:
            raise wrong_value("currency_code", f"{currency} is not an enabled currency")
        return {"discount_type": "fixed_amount", "discount_amount": amount, "currency_code": currency}
    raise wrong_value("discount_type", "invalid value")


def _subscription(state: SiteState, subscription_id: str) -> Obj:
    subscription = state.collections["subscriptions"].get(subscription_id)
    if subscription is None or subscription.get("deleted"):
        raise not_found("subscription")
    if subscription.get("status") in ENDED_STATUSES:
        raise ChargebeeError(
            400,
            "invalid_state_for_request",
            "Subscription is in cancelled state. This operation is not allowed.",
        )
    return subscription


def _changed(sandbox: ChargebeeSandbox, state: SiteState, subscription: Obj, changes: dict[str, Any]) -> Obj:
    version = max(int(time.time() * 1000), int(subscription.get("resource_version") or 0) + 1)
    updated = {**subscription, **changes, "updated_at": version // 1000, "resource_version": version}
    sandbox.record_change(state.site.name, "subscriptions", updated, created=False)
    entry: Obj = {"subscription": updated}
    customer = state.collections["customers"].get(str(updated.get("customer_id", "")))
    if customer is not None:
        entry["customer"] = customer
    return entry


def _apply_coupon(sandbox: ChargebeeSandbox, state: SiteState, params: Params, subscription_id: str) -> Obj:
    subscription = _subscription(state, subscription_id)
    _unknown(
        params, {"coupon_ids[0]", "replace_coupon_list", "prorate", "invoice_immediately", "end_of_term"}
    )
    coupon_id = params.get("coupon_ids[0]")
    changes: dict[str, Any] = {}
    if coupon_id:
        coupon = state.collections["coupons"].get(coupon_id)
        if coupon is None or coupon.get("status") not in (None, "active"):
            raise ChargebeeError(
                404, "resource_not_found", f"coupon_ids[0] : {coupon_id} not found", param="coupon_ids[0]"
            )
        kept = [] if params.get("replace_coupon_list") == "true" else list(subscription.get("coupons") or [])
        kept = [c for c in kept if c.get("coupon_id") != coupon_id]
        changes["coupons"] = [*kept, {"coupon_id": coupon_id, "applied_count": 0, "object": "coupon"}]
    return _changed(sandbox, state, subscription, changes)


def _change_term_end(
    sandbox: ChargebeeSandbox, state: SiteState, params: Params, subscription_id: str
) -> Obj:
    subscription = _subscription(state, subscription_id)
    _unknown(params, {"term_ends_at", "prorate", "invoice_immediately"})
    term_ends_at = _integer(params, "term_ends_at")
    if term_ends_at is None:
        raise wrong_value("term_ends_at", "cannot be blank")
    if term_ends_at <= int(time.time()):
        raise wrong_value("term_ends_at", "should be in future")
    changes: dict[str, Any] = {"current_term_end": term_ends_at, "next_billing_at": term_ends_at}
    if subscription.get("status") == "in_trial":
        changes["trial_end"] = term_ends_at
    return _changed(sandbox, state, subscription, changes)
