"""Chargebee API objects (the unwrapped entries of the v2 list endpoints) as canonical records.

Product Catalog 1.0 subscriptions carry ``plan_*`` fields and ``addons``; 2.0 subscriptions carry
``subscription_items``. Every recurring item of a subscription is billed on the subscription's
``billing_period``/``billing_period_unit``. Coupons are referenced by id only, so a subscription
with coupons gets its MRR later, from :func:`importer.domain.mrr.subscription_mrr` with the coupons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from contracts.events import Processor
from contracts.records import (
    CanonicalRecord,
    CouponRecord,
    CustomerRecord,
    Discount,
    Interval,
    InvoiceRecord,
    Money,
    PriceRecord,
    SubscriptionItem,
    SubscriptionRecord,
)

from importer.domain.mrr import with_mrr
from importer.domain.raw import (
    MalformedObject,
    currency,
    integer,
    interval,
    mapping,
    number,
    required_id,
    sequence,
    text,
    timestamp,
)
from importer.domain.source import NormalizationContext, RawObject

_PROCESSOR: Final = Processor.CHARGEBEE
#: Chargebee's coupon durations in the canonical (Stripe) vocabulary.
_DURATIONS: Final = {"one_time": "once", "forever": "forever", "limited_period": "repeating"}
#: One-off charges are not recurring revenue.
_RECURRING_ITEM_TYPES: Final = frozenset({"plan", "addon"})


def customer(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    full_name = " ".join(part for part in (text(raw.get("first_name")), text(raw.get("last_name"))) if part)
    return [
        CustomerRecord(
            account_id=context.account_id,
            processor=_PROCESSOR,
            object_id=required_id("customers", raw),
            created_at=timestamp(raw.get("created_at")),
            email=text(raw.get("email")),
            name=full_name or text(raw.get("company")),
            currency=currency(raw.get("preferred_currency_code")),
            deleted=raw.get("deleted") is True,
        )
    ]


def subscription(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    subscription_id = required_id("subscriptions", raw)
    sub_currency = currency(raw.get("currency_code"))
    customer_id = text(raw.get("customer_id"))
    if sub_currency is None:
        raise MalformedObject("subscriptions", subscription_id, "no currency_code")
    if customer_id is None:
        raise MalformedObject("subscriptions", subscription_id, "no customer_id")
    status = text(raw.get("status")) or "unknown"
    billing_interval = interval(raw.get("billing_period_unit")) or "month"
    interval_count = max(integer(raw.get("billing_period")) or 1, 1)
    items = _items(raw, billing_interval, interval_count)
    cancelled_at = timestamp(raw.get("cancelled_at"))
    record = SubscriptionRecord(
        account_id=context.account_id,
        processor=_PROCESSOR,
        object_id=subscription_id,
        created_at=timestamp(raw.get("created_at")),
        customer_id=customer_id,
        status=status,
        currency=sub_currency,
        items=items,
        discounts=_discounts(raw, cancelled_at if status == "cancelled" else context.as_of),
        started_at=timestamp(raw.get("started_at")) or timestamp(raw.get("activated_at")),
        trial_end=timestamp(raw.get("trial_end")),
        current_period_end=timestamp(raw.get("current_term_end")),
        # ``non_renewing``: cancels at the end of the term; ``cancelled_at`` is then that future time.
        cancel_at_period_end=status == "non_renewing",
        canceled_at=cancelled_at,
        ended_at=cancelled_at if status == "cancelled" else None,
        # ``cancel_reason`` is Chargebee's own (e.g. ``not_paid``); ``cancel_reason_code`` the
        # merchant's configured reason code, chosen when a person cancels.
        cancel_reason=text(raw.get("cancel_reason")),
        cancel_reason_code=text(raw.get("cancel_reason_code")),
        plan=_plan_id(raw),
    )
    return [with_mrr(record)]


def invoice(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    invoice_id = required_id("invoices", raw)
    invoice_currency = currency(raw.get("currency_code"))
    if invoice_currency is None:
        raise MalformedObject("invoices", invoice_id, "no currency_code")
    return [
        InvoiceRecord(
            account_id=context.account_id,
            processor=_PROCESSOR,
            object_id=invoice_id,
            created_at=timestamp(raw.get("generated_at")) or timestamp(raw.get("date")),
            customer_id=text(raw.get("customer_id")),
            subscription_id=text(raw.get("subscription_id")),
            status=text(raw.get("status")),
            currency=invoice_currency,
            total=integer(raw.get("total")) or 0,
            amount_paid=integer(raw.get("amount_paid")) or 0,
            amount_due=integer(raw.get("amount_due")) or 0,
            paid_at=timestamp(raw.get("paid_at")),
            attempt_count=_attempts(raw),
        )
    ]


def coupon(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    discount_type = text(raw.get("discount_type"))
    amount = integer(raw.get("discount_amount"))
    amount_currency = currency(raw.get("currency_code"))
    months = integer(raw.get("duration_month"))
    if months is None and text(raw.get("period_unit")) == "month":
        months = integer(raw.get("period"))
    return [
        CouponRecord(
            account_id=context.account_id,
            processor=_PROCESSOR,
            object_id=required_id("coupons", raw),
            created_at=timestamp(raw.get("created_at")),
            name=text(raw.get("name")),
            percent_off=number(raw.get("discount_percentage")) if discount_type == "percentage" else None,
            amount_off=(
                Money(amount=amount, currency=amount_currency)
                if discount_type == "fixed_amount" and amount is not None and amount_currency is not None
                else None
            ),
            duration=_DURATIONS.get(text(raw.get("duration_type")) or "", text(raw.get("duration_type"))),
            duration_in_months=months,
            valid=(text(raw.get("status")) or "active") == "active",
        )
    ]


def plan(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    return [_catalog_price("plans", raw, context, recurring=True, product_id=None)]


def addon(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    recurring = text(raw.get("charge_type")) != "non_recurring"
    return [_catalog_price("addons", raw, context, recurring=recurring, product_id=None)]


def item(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    # Items are Product Catalog 2.0's products: no canonical record; item prices name their item.
    return []


def item_price(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    recurring = text(raw.get("item_type")) != "charge" and interval(raw.get("period_unit")) is not None
    return [
        _catalog_price("item_prices", raw, context, recurring=recurring, product_id=text(raw.get("item_id")))
    ]


def _catalog_price(
    resource: str,
    raw: RawObject,
    context: NormalizationContext,
    *,
    recurring: bool,
    product_id: str | None,
) -> PriceRecord:
    return PriceRecord(
        account_id=context.account_id,
        processor=_PROCESSOR,
        object_id=required_id(resource, raw),
        # Plans, addons and items carry no creation time; item prices do.
        created_at=timestamp(raw.get("created_at")),
        product_id=product_id,
        name=text(raw.get("external_name")) or text(raw.get("name")) or text(raw.get("invoice_name")),
        currency=currency(raw.get("currency_code")),
        unit_amount=integer(raw.get("price")),
        interval=interval(raw.get("period_unit")) if recurring else None,
        interval_count=max(integer(raw.get("period")) or 1, 1),
        recurring=recurring,
        active=(text(raw.get("status")) or "active") == "active",
    )


def _amount_and_quantity(entry: Mapping[str, Any], price_field: str, quantity_field: str) -> tuple[int, int]:
    unit_price = integer(entry.get(price_field))
    quantity = integer(entry.get(quantity_field))
    if unit_price is not None:
        return unit_price, 1 if quantity is None else quantity
    # Tiered and volume prices have no unit price: the item's amount is its whole recurring charge.
    amount = integer(entry.get("amount")) or integer(entry.get("plan_amount"))
    return amount or 0, 1


def _items(raw: RawObject, billing_interval: Interval, interval_count: int) -> list[SubscriptionItem]:
    def billed(
        price_id: str | None, entry: Mapping[str, Any], price_field: str, quantity: str
    ) -> SubscriptionItem:
        amount, count = _amount_and_quantity(entry, price_field, quantity)
        return SubscriptionItem(
            price_id=price_id,
            unit_amount=amount,
            quantity=count,
            interval=billing_interval,
            interval_count=interval_count,
        )

    items = [
        billed(text(entry.get("item_price_id")), entry, "unit_price", "quantity")
        for entry in (mapping(value) for value in sequence(raw.get("subscription_items")))
        if text(entry.get("item_type")) in _RECURRING_ITEM_TYPES
    ]
    if items or text(raw.get("plan_id")) is None:
        return items
    items.append(billed(text(raw.get("plan_id")), raw, "plan_unit_price", "plan_quantity"))
    items.extend(
        billed(text(entry.get("id")), entry, "unit_price", "quantity")
        for entry in (mapping(value) for value in sequence(raw.get("addons")))
    )
    return items


def _plan_id(raw: RawObject) -> str | None:
    for entry in (mapping(value) for value in sequence(raw.get("subscription_items"))):
        if text(entry.get("item_type")) == "plan":
            return text(entry.get("item_price_id"))
    return text(raw.get("plan_id"))


def _discounts(raw: RawObject, reference: datetime | None) -> list[Discount]:
    """The discounts in effect at ``reference`` (the cancellation, or the import for a live one).

    Chargebee keeps a limited-period coupon listed after its ``apply_till``: past that it no longer
    discounts anything. One-time coupons and discounts reduce one invoice, not recurring revenue.
    """
    discounts: list[Discount] = []
    for entry in (mapping(value) for value in sequence(raw.get("coupons"))):
        coupon_id = text(entry.get("coupon_id"))
        apply_till = timestamp(entry.get("apply_till"))
        if coupon_id is None or (
            apply_till is not None and reference is not None and apply_till <= reference
        ):
            continue
        discounts.append(Discount(coupon_id=coupon_id))
    if not sequence(raw.get("coupons")) and (legacy := text(raw.get("coupon"))):
        discounts.append(Discount(coupon_id=legacy))
    # Product Catalog 2.0 manual discounts carry their value; they count unless excluded from MRR.
    for entry in (mapping(value) for value in sequence(raw.get("discounts"))):
        if entry.get("included_in_mrr") is False or text(entry.get("duration_type")) == "one_time":
            continue
        kind = text(entry.get("type"))
        if kind == "percentage" and (percent := number(entry.get("percentage"))) is not None:
            discounts.append(Discount(percent_off=percent))
        elif kind == "fixed_amount" and (amount := integer(entry.get("amount"))) is not None:
            discounts.append(Discount(amount_off=amount))
    return discounts


HANDLERS: Final[Mapping[str, Callable[[RawObject, NormalizationContext], list[CanonicalRecord]]]] = {
    "customers": customer,
    "subscriptions": subscription,
    "invoices": invoice,
    "coupons": coupon,
    "plans": plan,
    "addons": addon,
    "items": item,
    "item_prices": item_price,
}


def _attempts(raw: Mapping[str, Any]) -> int:
    """The first attempt and each dunning retry after it (none known for an unpaid invoice)."""
    dunning = sequence(raw.get("dunning_attempts"))
    if dunning:
        return 1 + len(dunning)
    return 1 if text(raw.get("status")) == "paid" else 0
