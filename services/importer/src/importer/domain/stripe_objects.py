"""Stripe API objects (exact JSON of the list endpoints) as canonical records.

Both shapes Stripe has served recently are read: the single ``discount`` and the ``discounts`` list
(expanded with ``expand[]=data.discounts``, or coupon ids only), a discount's coupon under
``coupon`` or ``source.coupon``, ``current_period_end`` on the subscription or on its items, and an
invoice's subscription under ``subscription`` or ``parent.subscription_details.subscription``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from contracts.events import Processor
from contracts.records import (
    CanonicalRecord,
    CouponRecord,
    CustomerRecord,
    Discount,
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
    object_id,
    required_id,
    sequence,
    text,
    timestamp,
)
from importer.domain.source import NormalizationContext, RawObject

_PROCESSOR: Final = Processor.STRIPE


def customer(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    return [
        CustomerRecord(
            account_id=context.account_id,
            processor=_PROCESSOR,
            object_id=required_id("customers", raw),
            created_at=timestamp(raw.get("created")),
            email=text(raw.get("email")),
            name=text(raw.get("name")),
            currency=currency(raw.get("currency")),
            deleted=raw.get("deleted") is True,
        )
    ]


def product(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    # No canonical product record exists: a product's name reaches the prices that expand it.
    return []


def price(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    recurring = mapping(raw.get("recurring"))
    return [
        _price_record(
            "prices",
            raw,
            context,
            unit_amount=_unit_amount(raw),
            terms=recurring,
            recurring=raw.get("type") == "recurring" or bool(recurring),
        )
    ]


def plan(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    return [
        _price_record(
            "plans", raw, context, unit_amount=integer(raw.get("amount")), terms=raw, recurring=True
        )
    ]


def _price_record(
    resource: str,
    raw: RawObject,
    context: NormalizationContext,
    *,
    unit_amount: int | None,
    terms: Mapping[str, Any],
    recurring: bool,
) -> PriceRecord:
    """A price or a (legacy) plan; ``terms`` carries ``interval`` and ``interval_count``."""
    return PriceRecord(
        account_id=context.account_id,
        processor=_PROCESSOR,
        object_id=required_id(resource, raw),
        created_at=timestamp(raw.get("created")),
        product_id=object_id(raw.get("product")),
        name=text(mapping(raw.get("product")).get("name")) or text(raw.get("nickname")),
        currency=currency(raw.get("currency")),
        unit_amount=unit_amount,
        interval=interval(terms.get("interval")),
        interval_count=integer(terms.get("interval_count")) or 1,
        recurring=recurring,
        active=raw.get("active") is not False,
    )


def coupon(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    amount_off = integer(raw.get("amount_off"))
    amount_currency = currency(raw.get("currency"))
    return [
        CouponRecord(
            account_id=context.account_id,
            processor=_PROCESSOR,
            object_id=required_id("coupons", raw),
            created_at=timestamp(raw.get("created")),
            name=text(raw.get("name")),
            percent_off=number(raw.get("percent_off")),
            amount_off=(
                Money(amount=amount_off, currency=amount_currency)
                if amount_off is not None and amount_currency is not None
                else None
            ),
            duration=text(raw.get("duration")),
            duration_in_months=integer(raw.get("duration_in_months")),
            valid=raw.get("valid") is not False,
        )
    ]


def subscription(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    subscription_id = required_id("subscriptions", raw)
    raw_items = [mapping(item) for item in sequence(mapping(raw.get("items")).get("data"))]
    sub_currency = currency(raw.get("currency")) or next(
        (code for item in raw_items if (code := currency(_item_price(item).get("currency")))), None
    )
    customer_id = object_id(raw.get("customer"))
    if sub_currency is None:
        raise MalformedObject("subscriptions", subscription_id, "no currency")
    if customer_id is None:
        raise MalformedObject("subscriptions", subscription_id, "no customer")
    details = mapping(raw.get("cancellation_details"))
    items = [_subscription_item(item) for item in raw_items]
    record = SubscriptionRecord(
        account_id=context.account_id,
        processor=_PROCESSOR,
        object_id=subscription_id,
        created_at=timestamp(raw.get("created")),
        customer_id=customer_id,
        status=text(raw.get("status")) or "unknown",
        currency=sub_currency,
        items=items,
        discounts=_discounts(raw, sub_currency),
        started_at=timestamp(raw.get("start_date")),
        trial_end=timestamp(raw.get("trial_end")),
        current_period_end=timestamp(raw.get("current_period_end"))
        or next((end for item in raw_items if (end := timestamp(item.get("current_period_end")))), None),
        cancel_at_period_end=raw.get("cancel_at_period_end") is True,
        canceled_at=timestamp(raw.get("canceled_at")),
        ended_at=timestamp(raw.get("ended_at")),
        cancel_reason=text(details.get("reason")),
        cancel_feedback=text(details.get("feedback")),
        cancel_comment=text(details.get("comment")),
        plan=items[0].price_id if items else None,
    )
    return [with_mrr(record)]


def invoice(raw: RawObject, context: NormalizationContext) -> list[CanonicalRecord]:
    invoice_id = required_id("invoices", raw)
    invoice_currency = currency(raw.get("currency"))
    if invoice_currency is None:
        raise MalformedObject("invoices", invoice_id, "no currency")
    parent_subscription = mapping(mapping(raw.get("parent")).get("subscription_details")).get("subscription")
    return [
        InvoiceRecord(
            account_id=context.account_id,
            processor=_PROCESSOR,
            object_id=invoice_id,
            created_at=timestamp(raw.get("created")),
            customer_id=object_id(raw.get("customer")),
            subscription_id=object_id(raw.get("subscription")) or object_id(parent_subscription),
            status=text(raw.get("status")),
            currency=invoice_currency,
            total=integer(raw.get("total")) or 0,
            amount_paid=integer(raw.get("amount_paid")) or 0,
            amount_due=integer(raw.get("amount_due")) or 0,
            paid_at=timestamp(mapping(raw.get("status_transitions")).get("paid_at")),
            attempt_count=integer(raw.get("attempt_count")) or 0,
        )
    ]


def _unit_amount(price_object: Mapping[str, Any]) -> int | None:
    amount = integer(price_object.get("unit_amount"))
    if amount is not None:
        return amount
    decimal = text(price_object.get("unit_amount_decimal"))
    if decimal is not None:
        try:
            return round(float(decimal))
        except ValueError:
            return None
    return integer(price_object.get("amount"))  # a legacy plan


def _item_price(item: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(item.get("price")) or mapping(item.get("plan"))


def _subscription_item(item: Mapping[str, Any]) -> SubscriptionItem:
    price_object = _item_price(item)
    recurring = mapping(price_object.get("recurring"))
    unit = interval(recurring.get("interval")) or interval(price_object.get("interval"))
    interval_count = integer(recurring.get("interval_count")) or integer(price_object.get("interval_count"))
    usage_type = text(recurring.get("usage_type")) or text(price_object.get("usage_type"))
    quantity = integer(item.get("quantity"))
    return SubscriptionItem(
        price_id=text(price_object.get("id")),
        product_id=object_id(price_object.get("product")),
        name=text(price_object.get("nickname")),
        unit_amount=_unit_amount(price_object) or 0,
        # A metered item bills usage after the fact: it has no quantity and no recurring amount.
        quantity=0 if usage_type == "metered" else (1 if quantity is None else quantity),
        interval=unit or "month",
        interval_count=max(interval_count or 1, 1),
    )


def _discounts(raw: RawObject, sub_currency: str) -> list[Discount]:
    expanded = [mapping(entry) for entry in sequence(raw.get("discounts")) if isinstance(entry, Mapping)]
    if not expanded and isinstance(raw.get("discount"), Mapping):
        expanded = [mapping(raw.get("discount"))]
    discounts: list[Discount] = []
    for entry in expanded:
        coupon_value = entry.get("coupon") or mapping(entry.get("source")).get("coupon")
        if isinstance(coupon_value, str):
            discounts.append(Discount(coupon_id=coupon_value))
        elif isinstance(coupon_value, Mapping) and coupon_value.get("duration") != "once":
            # A one-time coupon reduces one invoice, not recurring revenue.
            discounts.append(_coupon_discount(coupon_value, sub_currency))
    return discounts


def _coupon_discount(coupon_object: Mapping[str, Any], sub_currency: str) -> Discount:
    coupon_id = text(coupon_object.get("id"))
    percent_off = number(coupon_object.get("percent_off"))
    if percent_off is not None:
        return Discount(coupon_id=coupon_id, percent_off=percent_off)
    amount_off = integer(coupon_object.get("amount_off"))
    if amount_off is not None and currency(coupon_object.get("currency")) != sub_currency:
        # A multi-currency coupon carries its amount for other currencies in ``currency_options``.
        option = mapping(mapping(coupon_object.get("currency_options")).get(sub_currency.lower()))
        amount_off = integer(option.get("amount_off"))
        if amount_off is None:
            # Not applicable in this currency: a zero discount, not an unresolved coupon reference.
            return Discount(coupon_id=coupon_id, amount_off=0)
    if amount_off is None:
        return Discount(coupon_id=coupon_id, amount_off=0)
    return Discount(coupon_id=coupon_id, amount_off=amount_off)


HANDLERS: Final[Mapping[str, Callable[[RawObject, NormalizationContext], list[CanonicalRecord]]]] = {
    "customers": customer,
    "products": product,
    "prices": price,
    "plans": plan,
    "coupons": coupon,
    "subscriptions": subscription,
    "invoices": invoice,
}
