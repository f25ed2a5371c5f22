"""Render the billing history as Chargebee API v2 objects (Product Catalog 1.0 or 2.0).

Chargebee leaves unset attributes out of its JSON instead of sending null; so do we.
"""

from __future__ import annotations

import random
from typing import Any

from sandbox.data.model import (
    COUPONS,
    DAY_S,
    HOUR_S,
    PRICE_POINTS,
    PRODUCTS,
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

CHARGEBEE_STATUS = {
    "active": "active",
    "canceled": "cancelled",
    "trialing": "in_trial",
    "scheduled_cancel": "non_renewing",
    "past_due": "active",
    "paused": "paused",
    "unpaid": "active",
    "incomplete_expired": "cancelled",
    "future": "future",
}
INVOICE_STATUS = {"paid": "paid", "open": "payment_due", "uncollectible": "not_paid", "void": "voided"}
CANCEL_REASON_CODES = (
    "Too expensive",
    "Switched to a competitor",
    "Missing features",
    "Not using the product",
    "Business closed",
    "Other",
)
DURATION_TYPE = {"once": "one_time", "repeating": "limited_period", "forever": "forever"}
ITEM_FAMILY_ID = "saas-products"


def compact(obj: Obj) -> Obj:
    """Drop unset attributes, as Chargebee does."""
    return {k: v for k, v in obj.items() if v is not None}


def _period_slug(pp: PricePoint) -> str:
    if pp.interval == "month" and pp.interval_count == 3:
        return "quarterly"
    return {"month": "monthly", "year": "annual", "week": "weekly", "day": "daily"}[pp.interval]


def _item_price_period(pp: PricePoint) -> str:
    if pp.interval_count > 1:
        return f"Every-{pp.interval_count}-{pp.interval}s"
    return {"month": "Monthly", "year": "Yearly", "week": "Weekly", "day": "Daily"}[pp.interval]


def plan_id_pc1(pp: PricePoint) -> str:
    if pp.legacy_plan_id:
        return pp.legacy_plan_id
    base = f"{pp.product.key}-{_period_slug(pp)}"
    if pp.product.addon:
        base = f"{pp.product.key}-addon"
    if pp.currency != "usd":
        base += f"-{pp.currency}"
    if not pp.active:
        base += "-2023"
    return base


def item_price_id(pp: PricePoint) -> str:
    base = f"{pp.product.key}-{pp.currency.upper()}-{_item_price_period(pp)}"
    return base if pp.active else base + "-2023"


def monthly_amount(pp: PricePoint, quantity: int) -> float:
    amount = pp.amount * quantity
    if pp.interval == "month":
        return amount / pp.interval_count
    if pp.interval == "year":
        return amount / (12 * pp.interval_count)
    if pp.interval == "week":
        return amount * 52 / (12 * pp.interval_count)
    return amount * 365 / (12 * pp.interval_count)


class ChargebeeRenderer:
    def __init__(self, rng: random.Random, history: History, *, catalog_version: str) -> None:
        self.rng = rng
        self.history = history
        self.pc2 = catalog_version == "2.0"
        self.catalog_created = history.now - 760 * DAY_S

    def _id(self) -> str:
        return "Az" + random_id(self.rng, 14)

    def _version(self, updated_at: int) -> int:
        return updated_at * 1000 + self.rng.randrange(1000)

    def render(self) -> dict[str, list[Obj]]:
        data: dict[str, list[Obj]] = {}
        if self.pc2:
            data["items"], data["item_prices"] = self._items(), self._item_prices()
        else:
            data["plans"], data["addons"] = self._plans(), self._addons()
        coupons = self._coupons()
        customers: list[Obj] = []
        subscriptions: list[Obj] = []
        pending_invoices: list[tuple[int, str, Obj]] = []
        redemptions: dict[str, int] = {}
        for customer in self.history.customers:
            cust_id = self._id()
            customer_mrr = 0
            for sub in customer.subscriptions:
                sub_obj, sub_invoices = self._subscription(sub, cust_id)
                subscriptions.append(sub_obj)
                customer_mrr += int(sub_obj.get("mrr", 0))
                pending_invoices.extend((int(inv["date"]), sub_obj["id"], inv) for inv in sub_invoices)
                if sub.coupon is not None:
                    redemptions[sub.coupon.code] = redemptions.get(sub.coupon.code, 0) + 1
            customers.append(self._customer(customer, cust_id, customer_mrr))
        # Invoice numbers are a site-wide sequence in date order.
        pending_invoices.sort(key=lambda entry: (entry[0], entry[1]))
        invoices: list[Obj] = []
        for number, (_, _, inv) in enumerate(pending_invoices, start=1001):
            inv["id"] = str(number)
            for line in inv.get("line_items", []):
                line["id"] = f"li_{number}_{line['id']}"
            invoices.append(inv)
        for coupon in coupons:
            coupon["redemptions"] = redemptions.get(coupon["id"], 0)
        data.update(customers=customers, subscriptions=subscriptions, invoices=invoices, coupons=coupons)
        return data

    # --- catalog ---------------------------------------------------------------------------
    def _plans(self) -> list[Obj]:
        out: list[Obj] = []
        for offset, pp in enumerate(p for p in PRICE_POINTS if not p.product.addon):
            updated = self.catalog_created + offset * HOUR_S
            out.append(
                compact(
                    {
                        "id": plan_id_pc1(pp),
                        "name": f"{pp.product.name} {_period_slug(pp).title()} {pp.currency.upper()}",
                        "invoice_name": pp.product.name,
                        "price": pp.amount,
                        "period": pp.interval_count,
                        "period_unit": pp.interval,
                        "pricing_model": "per_unit",
                        "charge_model": "per_unit",
                        "free_quantity": 0,
                        "status": "active" if pp.active else "archived",
                        "archived_at": None if pp.active else updated + 30 * DAY_S,
                        "enabled_in_hosted_pages": True,
                        "enabled_in_portal": True,
                        "addon_applicability": "all",
                        "is_shippable": False,
                        "updated_at": updated if pp.active else updated + 30 * DAY_S,
                        "giftable": False,
                        "resource_version": self._version(updated),
                        "object": "plan",
                        "taxable": True,
                        "currency_code": pp.currency.upper(),
                        "show_description_in_invoices": False,
                        "show_description_in_quotes": False,
                        "channel": "web",
                    }
                )
            )
        return out

    def _addons(self) -> list[Obj]:
        out: list[Obj] = []
        for offset, pp in enumerate(p for p in PRICE_POINTS if p.product.addon):
            updated = self.catalog_created + DAY_S + offset * HOUR_S
            out.append(
                {
                    "id": plan_id_pc1(pp),
                    "name": f"{pp.product.name} {pp.currency.upper()}",
                    "invoice_name": pp.product.name,
                    "pricing_model": "per_unit",
                    "charge_type": "recurring",
                    "price": pp.amount,
                    "period": pp.interval_count,
                    "period_unit": pp.interval,
                    "status": "active",
                    "enabled_in_portal": True,
                    "is_shippable": False,
                    "updated_at": updated,
                    "resource_version": self._version(updated),
                    "object": "addon",
                    "type": "on_off" if pp.product.key == "support" else "quantity",
                    "taxable": True,
                    "currency_code": pp.currency.upper(),
                    "show_description_in_invoices": False,
                    "show_description_in_quotes": False,
                    "channel": "web",
                }
            )
        return out

    def _items(self) -> list[Obj]:
        out: list[Obj] = []
        for offset, product in enumerate(PRODUCTS.values()):
            updated = self.catalog_created + offset * HOUR_S
            out.append(
                {
                    "id": product.key,
                    "name": product.name,
                    "external_name": product.name,
                    "description": product.description,
                    "status": "active",
                    "resource_version": self._version(updated),
                    "updated_at": updated,
                    "item_family_id": ITEM_FAMILY_ID,
                    "type": "addon" if product.addon else "plan",
                    "is_shippable": False,
                    "is_giftable": False,
                    "enabled_for_checkout": True,
                    "enabled_in_portal": True,
                    "item_applicability": "all",
                    "metered": False,
                    "channel": "web",
                    "object": "item",
                }
            )
        return out

    def _item_prices(self) -> list[Obj]:
        out: list[Obj] = []
        for offset, pp in enumerate(PRICE_POINTS):
            created = self.catalog_created + DAY_S + offset * 60
            updated = created if pp.active else created + 30 * DAY_S
            out.append(
                compact(
                    {
                        "id": item_price_id(pp),
                        "name": f"{pp.product.name} {pp.currency.upper()} {_item_price_period(pp)}",
                        "item_family_id": ITEM_FAMILY_ID,
                        "item_id": pp.product.key,
                        "status": "active" if pp.active else "archived",
                        "external_name": pp.product.name,
                        "pricing_model": "per_unit",
                        "price": pp.amount,
                        "period": pp.interval_count,
                        "period_unit": pp.interval,
                        "free_quantity": 0,
                        "created_at": created,
                        "updated_at": updated,
                        "archived_at": None if pp.active else updated,
                        "resource_version": self._version(updated),
                        "currency_code": pp.currency.upper(),
                        "is_taxable": True,
                        "item_type": "addon" if pp.product.addon else "plan",
                        "show_description_in_invoices": False,
                        "show_description_in_quotes": False,
                        "channel": "web",
                        "object": "item_price",
                    }
                )
            )
        return out

    def _coupons(self) -> list[Obj]:
        out: list[Obj] = []
        for coupon in COUPONS:
            created = self.history.now - coupon.created_days_ago * DAY_S
            updated = created if coupon.valid else created + 90 * DAY_S
            limited = coupon.duration == "repeating"
            out.append(
                compact(
                    {
                        "id": coupon.code,
                        "name": coupon.name,
                        "invoice_name": coupon.name,
                        "discount_type": "percentage" if coupon.percent_off is not None else "fixed_amount",
                        "discount_percentage": coupon.percent_off,
                        "discount_amount": coupon.amount_off,
                        "currency_code": coupon.currency.upper() if coupon.currency else None,
                        "duration_type": DURATION_TYPE[coupon.duration],
                        "duration_month": coupon.duration_in_months if limited else None,
                        "period": coupon.duration_in_months if limited else None,
                        "period_unit": "month" if limited else None,
                        "valid_till": None if coupon.valid else updated,
                        "status": "active" if coupon.valid else "expired",
                        "apply_discount_on": "not_applicable",
                        "apply_on": "invoice_amount",
                        "plan_constraint": None if self.pc2 else "all",
                        "addon_constraint": None if self.pc2 else "none",
                        "created_at": created,
                        "updated_at": updated,
                        "resource_version": self._version(updated),
                        "object": "coupon",
                        "redemptions": 0,
                        "included_in_mrr": True,
                    }
                )
            )
        return out

    # --- customers, subscriptions, invoices -------------------------------------------------
    def _customer(self, customer: Customer, cust_id: str, mrr: int) -> Obj:
        times = [customer.created]
        times += [s.created for s in customer.subscriptions]
        updated = max(times)
        return {
            "id": cust_id,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "email": customer.email,
            "company": customer.company,
            "auto_collection": "on",
            "net_term_days": 0,
            "allow_direct_debit": False,
            "created_at": customer.created,
            "taxability": "taxable",
            "updated_at": updated,
            "pii_cleared": "active",
            "channel": "web",
            "resource_version": self._version(updated),
            "deleted": customer.deleted,
            "object": "customer",
            "billing_address": {
                "first_name": customer.first_name,
                "last_name": customer.last_name,
                "company": customer.company,
                "country": customer.country,
                "validation_status": "not_validated",
                "object": "billing_address",
            },
            "card_status": "valid" if customer.subscriptions else "no_card",
            "promotional_credits": 0,
            "refundable_credits": 0,
            "excess_payments": 0,
            "unbilled_charges": 0,
            "preferred_currency_code": customer.currency.upper(),
            "mrr": mrr,
        }

    def _cancel_fields(self, sub: Subscription) -> tuple[str | None, str | None]:
        """(cancel_reason, cancel_reason_code) for an ended or non-renewing subscription."""
        cause = sub.cause
        if sub.fate == "incomplete_expired":
            return "no_card", None
        if cause == "payment_failed":
            return ("not_paid" if self.rng.random() < 0.7 else "no_card"), None
        if cause == "fraud":
            return "fraud_review_failed", None
        if cause == "compliance":
            return self.rng.choice(("non_compliant_customer", "tos_violation")), None
        if cause == "payment_disputed":
            return "other", "Chargeback"
        reason = "other" if self.rng.random() < 0.2 else None
        return reason, self.rng.choice(CANCEL_REASON_CODES)

    def _mrr(self, sub: Subscription, status: str) -> int:
        if status not in ("active", "non_renewing"):
            return 0
        gross = sum(monthly_amount(pp, qty) for pp, qty in sub.items)
        coupon = sub.coupon
        if coupon is None or not discount_applies(sub, sub.current_period.start if sub.current_period else 0):
            return round(gross)
        if coupon.percent_off is not None:
            return round(gross * (1 - coupon.percent_off / 100))
        base = sub.base
        off = monthly_amount(
            PricePoint(
                "off", base.product, coupon.amount_off or 0, base.currency, base.interval, base.interval_count
            ),
            1,
        )
        return round(max(gross - off, 0))

    def _subscription(self, sub: Subscription, cust_id: str) -> tuple[Obj, list[Obj]]:
        now = self.history.now
        sub_id = self._id()
        status = CHARGEBEE_STATUS[sub.fate]
        base, quantity = sub.items[0]
        current = sub.current_period
        cancelled_at: int | None = None
        reason: str | None = None
        code: str | None = None
        if status == "cancelled":
            cancelled_at = sub.ended_at
            reason, code = self._cancel_fields(sub)
        elif status == "non_renewing":
            cancelled_at = sub.cancel_at
            reason, code = self._cancel_fields(sub)
        started_at = None if status == "future" else (sub.trial_start or sub.start)
        activated_at = None
        if status not in ("future", "in_trial"):
            activated_at = sub.trial_end if sub.trial_end is not None else sub.start
        term = current if status in ("active", "non_renewing", "paused") else None
        if status == "in_trial":
            term = Period(sub.trial_start or sub.start, sub.trial_end or sub.start)
        events = [sub.created, started_at or 0, activated_at or 0, term.start if term else 0]
        if cancelled_at is not None and cancelled_at <= now:
            events.append(cancelled_at)
        if sub.canceled_at is not None:
            events.append(sub.canceled_at)
        if sub.pause_start is not None:
            events.append(sub.pause_start)
        updated = min(max(events), now)
        deleted = sub.customer.deleted
        coupons: list[Obj] = []
        if sub.coupon is not None:
            coupon = sub.coupon
            applied = sum(1 for p in sub.periods if discount_applies(sub, p.start))
            apply_till = (
                add_months(sub.billing_anchor, coupon.duration_in_months)
                if coupon.duration_in_months
                else None
            )
            coupons.append(
                compact(
                    {
                        "coupon_id": coupon.code,
                        "apply_till": apply_till,
                        "applied_count": applied,
                        "object": "coupon",
                    }
                )
            )
        invoices = self._invoices(sub, sub_id, cust_id, deleted)
        due = [inv for inv in invoices if inv["status"] in ("payment_due", "not_paid")]
        obj: Obj = {
            "id": sub_id,
            "customer_id": cust_id,
            "billing_period": base.interval_count,
            "billing_period_unit": base.interval,
            "status": status,
            "currency_code": sub.currency.upper(),
            "start_date": sub.start if status == "future" else None,
            "trial_start": sub.trial_start,
            "trial_end": sub.trial_end,
            "current_term_start": term.start if term else None,
            "current_term_end": term.end if term else None,
            "next_billing_at": term.end if status in ("active", "in_trial") and term else None,
            "started_at": started_at,
            "activated_at": activated_at,
            "pause_date": sub.pause_start,
            "resume_date": sub.resume_at,
            "cancelled_at": cancelled_at,
            "cancel_reason": reason,
            "cancel_reason_code": code,
            "created_at": sub.created,
            "updated_at": updated,
            "has_scheduled_changes": False,
            "channel": "web",
            "resource_version": self._version(updated),
            "deleted": deleted,
            "object": "subscription",
            "coupons": coupons or None,
            "due_invoices_count": len(due),
            "due_since": min(int(inv["date"]) for inv in due) if due else None,
            "total_dues": sum(int(inv["amount_due"]) for inv in due) if due else None,
            "mrr": self._mrr(sub, status),
            "exchange_rate": 1.0,
            "base_currency_code": sub.currency.upper(),
        }
        if self.pc2:
            obj["subscription_items"] = [
                {
                    "item_price_id": item_price_id(pp),
                    "item_type": "addon" if pp.product.addon else "plan",
                    "quantity": qty,
                    "unit_price": pp.amount,
                    "amount": pp.amount * qty,
                    "free_quantity": 0,
                    "object": "subscription_item",
                }
                for pp, qty in sub.items
            ]
        else:
            obj.update(
                plan_id=plan_id_pc1(base),
                plan_quantity=quantity,
                plan_unit_price=base.amount,
                plan_amount=base.amount * quantity,
                plan_free_quantity=0,
            )
            addons = [
                {
                    "id": plan_id_pc1(pp),
                    "quantity": qty,
                    "unit_price": pp.amount,
                    "amount": pp.amount * qty,
                    "object": "addon",
                }
                for pp, qty in sub.items[1:]
            ]
            if addons:
                obj["addons"] = addons
        return compact(obj), invoices

    def _invoices(self, sub: Subscription, sub_id: str, cust_id: str, deleted: bool) -> list[Obj]:
        now = self.history.now
        out: list[Obj] = []
        first_period_start = sub.billing_anchor
        for period, outcome in zip(sub.periods, invoice_outcomes(sub), strict=True):
            status = INVOICE_STATUS[outcome]
            lines: list[Obj] = []
            subtotal = 0
            for index, (pp, qty) in enumerate(sub.items):
                amount = pp.amount * qty
                subtotal += amount
                entity_type = (
                    ("addon_item_price" if pp.product.addon else "plan_item_price")
                    if self.pc2
                    else ("addon" if pp.product.addon else "plan")
                )
                lines.append(
                    {
                        "id": str(index + 1),
                        "date_from": period.start,
                        "date_to": period.end,
                        "unit_amount": pp.amount,
                        "quantity": qty,
                        "amount": amount,
                        "pricing_model": "per_unit",
                        "is_taxable": False,
                        "tax_amount": 0,
                        "object": "line_item",
                        "subscription_id": sub_id,
                        "customer_id": cust_id,
                        "description": pp.product.name,
                        "entity_type": entity_type,
                        "entity_id": item_price_id(pp) if self.pc2 else plan_id_pc1(pp),
                        "discount_amount": 0,
                        "item_level_discount_amount": 0,
                    }
                )
            discounts: list[Obj] = []
            off = 0
            if sub.coupon is not None and discount_applies(sub, period.start):
                off = discount_amount(sub, subtotal)
                discounts.append(
                    {
                        "amount": off,
                        "description": sub.coupon.name,
                        "entity_type": "document_level_coupon",
                        "entity_id": sub.coupon.code,
                        "discount_type": "percentage"
                        if sub.coupon.percent_off is not None
                        else "fixed_amount",
                        "object": "discount",
                    }
                )
            total = subtotal - off
            paid = status == "paid"
            paid_at = min(period.start + HOUR_S, now) if paid else None
            voided_at = min(period.start + DAY_S, now) if status == "voided" else None
            updated = max(t for t in (period.start, paid_at, voided_at) if t is not None)
            out.append(
                compact(
                    {
                        "id": "",
                        "customer_id": cust_id,
                        "subscription_id": sub_id,
                        "recurring": True,
                        "status": status,
                        "price_type": "tax_exclusive",
                        "date": period.start,
                        "due_date": period.start,
                        "net_term_days": 0,
                        "exchange_rate": 1.0,
                        "total": total,
                        "amount_paid": total if paid else 0,
                        "amount_adjusted": 0,
                        "write_off_amount": 0,
                        "credits_applied": 0,
                        "amount_due": 0 if paid or status == "voided" else total,
                        "amount_to_collect": 0 if paid or status == "voided" else total,
                        "paid_at": paid_at,
                        "voided_at": voided_at,
                        "dunning_status": "in_progress" if status == "payment_due" else None,
                        "updated_at": updated,
                        "resource_version": self._version(updated),
                        "deleted": deleted,
                        "object": "invoice",
                        "first_invoice": period.start == first_period_start,
                        "new_sales_amount": total if period.start == first_period_start else 0,
                        "has_advance_charges": False,
                        "term_finalized": True,
                        "is_gifted": False,
                        "generated_at": period.start,
                        "channel": "web",
                        "round_off_amount": 0,
                        "tax": 0,
                        "sub_total": subtotal,
                        "currency_code": sub.currency.upper(),
                        "base_currency_code": sub.currency.upper(),
                        "line_items": lines,
                        "discounts": discounts,
                        "linked_payments": [],
                        "dunning_attempts": [],
                        "applied_credits": [],
                        "adjustment_credit_notes": [],
                        "issued_credit_notes": [],
                        "linked_orders": [],
                    }
                )
            )
        return out


def render_chargebee(rng: random.Random, history: History, *, catalog_version: str) -> dict[str, list[Obj]]:
    return ChargebeeRenderer(rng, history, catalog_version=catalog_version).render()
