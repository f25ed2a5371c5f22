"""Render the billing history as Stripe API objects (the JSON the list endpoints return)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sandbox.data.model import (
    COUPONS,
    DAY_S,
    HOUR_S,
    PRICE_POINTS,
    PRODUCTS,
    Coupon,
    Customer,
    History,
    Period,
    PricePoint,
    Subscription,
    add_months,
    discount_amount,
    discount_applies,
    invoice_outcomes,
    random_id,
)

Obj = dict[str, Any]

STRIPE_STATUS = {
    "active": "active",
    "canceled": "canceled",
    "trialing": "trialing",
    "scheduled_cancel": "active",
    "past_due": "past_due",
    "paused": "paused",
    "unpaid": "unpaid",
    "incomplete_expired": "incomplete_expired",
    "future": "trialing",  # Stripe models a later start as a trial until that date
}
CANCELLATION_REASON = {
    "voluntary": "cancellation_requested",
    "payment_failed": "payment_failed",
    "payment_disputed": "payment_disputed",
    "fraud": "cancellation_requested",
    "compliance": "cancellation_requested",
}
MERCHANT_COMMENTS = {
    "fraud": "Closed after a failed fraud review.",
    "compliance": "Terms of service violation.",
}


def _interval_words(pp: PricePoint) -> str:
    if pp.interval_count == 1:
        return pp.interval
    return f"{pp.interval_count} {pp.interval}s"


def _money(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€"}.get(currency, "")
    return f"{symbol}{amount / 100:.2f}"


@dataclass(frozen=True)
class _Refs:
    """A subscription with the ids its objects point to."""

    sub: Subscription
    sub_id: str
    cus_id: str
    customer: Customer


class StripeRenderer:
    def __init__(self, rng: random.Random, history: History, *, livemode: bool, account_name: str) -> None:
        self.rng = rng
        self.history = history
        self.livemode = livemode
        self.account_name = account_name
        self.product_ids: dict[str, str] = {}
        self.prices: dict[str, Obj] = {}
        self.plans: dict[str, Obj] = {}
        self.coupons: dict[str, Obj] = {}
        self.catalog_created = history.now - 760 * DAY_S

    def _id(self, prefix: str, length: int = 24) -> str:
        return prefix + (
            "1" + random_id(self.rng, length - 1) if length >= 24 else random_id(self.rng, length)
        )

    def render(self) -> dict[str, list[Obj]]:
        products = self._products()
        self._prices()
        for product in products:
            product["default_price"] = next(
                (
                    price["id"]
                    for price in self.prices.values()
                    if price["product"] == product["id"] and price["active"]
                ),
                None,
            )
        coupons = self._coupons()
        customers: list[Obj] = []
        subscriptions: list[Obj] = []
        invoices: list[Obj] = []
        redemptions: dict[str, int] = {}
        for customer in self.history.customers:
            cus_id = "cus_" + random_id(self.rng, 14)
            prefix = random_id(self.rng, 8).upper()
            customer_invoices: list[Obj] = []
            for sub in customer.subscriptions:
                sub_obj, sub_invoices = self._subscription(sub, cus_id, customer)
                subscriptions.append(sub_obj)
                customer_invoices.extend(sub_invoices)
                if sub.coupon is not None:
                    redemptions[sub.coupon.code] = redemptions.get(sub.coupon.code, 0) + 1
            customer_invoices.sort(key=lambda inv: (inv["created"], inv["id"]))
            for number, inv in enumerate(customer_invoices, start=1):
                inv["number"] = f"{prefix}-{number:04d}"
            invoices.extend(customer_invoices)
            delinquent = any(s.fate in ("past_due", "unpaid") for s in customer.subscriptions)
            customers.append(
                {
                    "id": cus_id,
                    "object": "customer",
                    "address": {
                        "city": None,
                        "country": customer.country,
                        "line1": None,
                        "line2": None,
                        "postal_code": None,
                        "state": None,
                    },
                    "balance": 0,
                    "created": customer.created,
                    "currency": customer.currency if customer.subscriptions else None,
                    "default_source": None,
                    "delinquent": delinquent,
                    "description": customer.company,
                    "discount": None,
                    "email": customer.email,
                    "invoice_prefix": prefix,
                    "invoice_settings": {
                        "custom_fields": None,
                        "default_payment_method": None,
                        "footer": None,
                        "rendering_options": None,
                    },
                    "livemode": self.livemode,
                    "metadata": {},
                    "name": f"{customer.first_name} {customer.last_name}",
                    "next_invoice_sequence": len(customer_invoices) + 1,
                    "phone": None,
                    "preferred_locales": [],
                    "shipping": None,
                    "tax_exempt": "none",
                    "test_clock": None,
                }
            )
        for code, count in redemptions.items():
            self.coupons[code]["times_redeemed"] = count
        return {
            "customers": customers,
            "products": products,
            "prices": list(self.prices.values()),
            "plans": list(self.plans.values()),
            "coupons": coupons,
            "subscriptions": subscriptions,
            "invoices": invoices,
        }

    # --- catalog ---------------------------------------------------------------------------
    def _products(self) -> list[Obj]:
        out: list[Obj] = []
        for offset, product in enumerate(PRODUCTS.values()):
            prod_id = "prod_" + random_id(self.rng, 14)
            self.product_ids[product.key] = prod_id
            created = self.catalog_created + offset * HOUR_S
            out.append(
                {
                    "id": prod_id,
                    "object": "product",
                    "active": True,
                    "created": created,
                    "default_price": None,
                    "description": product.description,
                    "images": [],
                    "livemode": self.livemode,
                    "marketing_features": [],
                    "metadata": {},
                    "name": product.name,
                    "package_dimensions": None,
                    "shippable": None,
                    "statement_descriptor": None,
                    "tax_code": None,
                    "type": "service",
                    "unit_label": "seat" if product.key in ("business", "seats") else None,
                    "updated": created,
                    "url": None,
                }
            )
        return out

    def _prices(self) -> None:
        for offset, pp in enumerate(PRICE_POINTS):
            price_id = pp.legacy_plan_id or self._id("price_")
            created = self.catalog_created + DAY_S + offset * 60
            nickname = f"{pp.product.name} {_interval_words(pp)} {pp.currency.upper()}"
            recurring = {
                "aggregate_usage": None,
                "interval": pp.interval,
                "interval_count": pp.interval_count,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
            product_id = self.product_ids[pp.product.key]
            self.prices[pp.key] = {
                "id": price_id,
                "object": "price",
                "active": pp.active,
                "billing_scheme": "per_unit",
                "created": created,
                "currency": pp.currency,
                "custom_unit_amount": None,
                "livemode": self.livemode,
                "lookup_key": None,
                "metadata": {},
                "nickname": nickname,
                "product": product_id,
                "recurring": recurring,
                "tax_behavior": "unspecified",
                "tiers_mode": None,
                "transform_quantity": None,
                "type": "recurring",
                "unit_amount": pp.amount,
                "unit_amount_decimal": str(pp.amount),
            }
            # Every recurring price is also a (legacy) plan with the same id.
            self.plans[pp.key] = {
                "id": price_id,
                "object": "plan",
                "active": pp.active,
                "aggregate_usage": None,
                "amount": pp.amount,
                "amount_decimal": str(pp.amount),
                "billing_scheme": "per_unit",
                "created": created,
                "currency": pp.currency,
                "interval": pp.interval,
                "interval_count": pp.interval_count,
                "livemode": self.livemode,
                "metadata": {},
                "meter": None,
                "nickname": nickname,
                "product": product_id,
                "tiers_mode": None,
                "transform_usage": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }

    def _coupons(self) -> list[Obj]:
        out: list[Obj] = []
        for coupon in COUPONS:
            created = self.history.now - coupon.created_days_ago * DAY_S
            obj: Obj = {
                "id": coupon.code,
                "object": "coupon",
                "amount_off": coupon.amount_off,
                "created": created,
                "currency": coupon.currency,
                "duration": coupon.duration,
                "duration_in_months": coupon.duration_in_months,
                "livemode": self.livemode,
                "max_redemptions": None,
                "metadata": {},
                "name": coupon.name,
                "percent_off": coupon.percent_off,
                "redeem_by": None if coupon.valid else created + 90 * DAY_S,
                "times_redeemed": 0,
                "valid": coupon.valid,
            }
            self.coupons[coupon.code] = obj
            out.append(obj)
        return out

    # --- subscriptions and invoices ---------------------------------------------------------
    def _discount(self, sub: Subscription, coupon: Coupon, sub_id: str, cus_id: str) -> Obj:
        start = sub.billing_anchor
        end = add_months(start, coupon.duration_in_months) if coupon.duration_in_months else None
        return {
            "id": self._id("di_"),
            "object": "discount",
            "checkout_session": None,
            "coupon": self.coupons[coupon.code],
            "customer": cus_id,
            "end": end,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": None,
            "start": start,
            "subscription": sub_id,
            "subscription_item": None,
        }

    def _discount_active(self, sub: Subscription, discount: Obj, at: int) -> bool:
        assert sub.coupon is not None
        if sub.coupon.duration == "once":
            return not sub.periods  # consumed by the first paid invoice
        end = discount["end"]
        return end is None or at < int(end)

    def _subscription(self, sub: Subscription, cus_id: str, customer: Customer) -> tuple[Obj, list[Obj]]:
        sub_id = self._id("sub_")
        status = STRIPE_STATUS[sub.fate]
        trial_start, trial_end = sub.trial_start, sub.trial_end
        if sub.fate == "future":
            trial_start, trial_end = sub.created, sub.start
        current = sub.current_period or Period(sub.start, sub.start)
        items: list[Obj] = []
        for pp, quantity in sub.items:
            items.append(
                {
                    "id": "si_" + random_id(self.rng, 14),
                    "object": "subscription_item",
                    "billing_thresholds": None,
                    "created": sub.created,
                    "current_period_end": current.end,
                    "current_period_start": current.start,
                    "discounts": [],
                    "metadata": {},
                    "plan": self.plans[pp.key],
                    "price": self.prices[pp.key],
                    "quantity": quantity,
                    "subscription": sub_id,
                    "tax_rates": [],
                }
            )
        discount = self._discount(sub, sub.coupon, sub_id, cus_id) if sub.coupon else None
        at = sub.ended_at if sub.ended_at is not None else self.history.now
        shown_discount = discount if discount and self._discount_active(sub, discount, at) else None
        invoices = self._invoices(_Refs(sub, sub_id, cus_id, customer), discount)
        single = len(sub.items) == 1
        cause = sub.cause if status == "canceled" or sub.fate == "scheduled_cancel" else None
        obj: Obj = {
            "id": sub_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": sub.billing_anchor if sub.fate != "future" else sub.start,
            "billing_cycle_anchor_config": None,
            "billing_thresholds": None,
            "cancel_at": sub.cancel_at,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "canceled_at": sub.canceled_at,
            "cancellation_details": {
                "comment": sub.comment if cause == "voluntary" else MERCHANT_COMMENTS.get(cause or ""),
                "feedback": sub.feedback if cause == "voluntary" else None,
                "reason": CANCELLATION_REASON.get(cause or ""),
            },
            "collection_method": "charge_automatically",
            "created": sub.created,
            "currency": sub.currency,
            "current_period_end": current.end,
            "current_period_start": current.start,
            "customer": cus_id,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discount": shown_discount,
            "discounts": [shown_discount["id"]] if shown_discount else [],
            "ended_at": sub.ended_at,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "total_count": len(items),
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "latest_invoice": invoices[-1]["id"] if invoices else None,
            "livemode": self.livemode,
            "metadata": {},
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "plan": self.plans[sub.base.key] if single else None,
            "quantity": sub.items[0][1] if single else None,
            "schedule": None,
            "start_date": sub.start if sub.fate != "future" else sub.created,
            "status": status,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": trial_start,
        }
        if sub.fate == "paused" and sub.resume_at is not None:
            obj["pause_collection"] = {"behavior": "void", "resumes_at": sub.resume_at}
        return obj, invoices

    def _invoices(self, refs: _Refs, discount: Obj | None) -> list[Obj]:
        sub = refs.sub
        out: list[Obj] = []
        uncapped = bool(sub.periods) and sub.periods[0].start == sub.billing_anchor
        if sub.trial_start is not None and (uncapped or not sub.periods):
            trial = Period(sub.trial_start, sub.trial_end or sub.trial_start)
            out.append(self._invoice(refs, trial, "paid", None, trial=True))
        for period, outcome in zip(sub.periods, invoice_outcomes(sub), strict=True):
            applied = discount if discount and discount_applies(sub, period.start) else None
            out.append(self._invoice(refs, period, outcome, applied))
        return out

    def _invoice(
        self,
        refs: _Refs,
        period: Period,
        outcome: str,
        discount: Obj | None,
        *,
        trial: bool = False,
    ) -> Obj:
        sub, sub_id, cus_id, customer = refs.sub, refs.sub_id, refs.cus_id, refs.customer
        inv_id = self._id("in_")
        created = period.start
        lines: list[Obj] = []
        subtotal = 0
        for pp, quantity in sub.items:
            amount = 0 if trial else pp.amount * quantity
            subtotal += amount
            label = "Trial period for" if trial else f"{quantity} × {pp.product.name} (at"
            description = (
                f"{label} {pp.product.name}"
                if trial
                else f"{label} {_money(pp.amount, pp.currency)} / {_interval_words(pp)})"
            )
            lines.append(
                {
                    "id": "il_" + random_id(self.rng, 24),
                    "object": "line_item",
                    "amount": amount,
                    "currency": pp.currency,
                    "description": description,
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": inv_id,
                    "livemode": self.livemode,
                    "metadata": {},
                    "period": {"end": period.end, "start": period.start},
                    "price": self.prices[pp.key],
                    "proration": False,
                    "quantity": quantity,
                    "subscription": sub_id,
                    "type": "subscription",
                }
            )
        off = discount_amount(sub, subtotal) if discount else 0
        total = subtotal - off
        paid = outcome == "paid"
        now = self.history.now
        finalized = min(created + HOUR_S, now)
        first = trial or (sub.trial_start is None and period.start == sub.billing_anchor)
        return {
            "id": inv_id,
            "object": "invoice",
            "account_country": "US",
            "account_name": self.account_name,
            "amount_due": total,
            "amount_paid": total if paid else 0,
            "amount_remaining": 0 if paid else total,
            "amount_shipping": 0,
            "attempt_count": 0 if total == 0 else (1 if paid else 4),
            "attempted": total > 0,
            "auto_advance": outcome == "open",
            "billing_reason": "subscription_create" if first else "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": created,
            "currency": sub.currency,
            "customer": cus_id,
            "customer_email": customer.email,
            "customer_name": f"{customer.first_name} {customer.last_name}",
            "description": None,
            "discount": discount,
            "discounts": [discount["id"]] if discount else [],
            "due_date": None,
            "effective_at": finalized,
            "ending_balance": 0,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{inv_id}/lines",
            },
            "livemode": self.livemode,
            "metadata": {},
            "number": None,
            "paid": paid,
            "paid_out_of_band": False,
            "parent": {
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": sub_id},
                "type": "subscription_details",
            },
            "period_end": created,
            "period_start": created,
            "status": outcome,
            "status_transitions": {
                "finalized_at": finalized,
                "marked_uncollectible_at": (
                    min(finalized + 21 * DAY_S, now) if outcome == "uncollectible" else None
                ),
                "paid_at": finalized if paid else None,
                "voided_at": min(finalized + DAY_S, now) if outcome == "void" else None,
            },
            "subscription": sub_id,
            "subtotal": subtotal,
            "tax": None,
            "total": total,
            "total_discount_amounts": [{"amount": off, "discount": discount["id"]}] if discount else [],
            "total_excluding_tax": total,
        }


def render_stripe(
    rng: random.Random, history: History, *, livemode: bool, account_name: str
) -> dict[str, list[Obj]]:
    return StripeRenderer(rng, history, livemode=livemode, account_name=account_name).render()
