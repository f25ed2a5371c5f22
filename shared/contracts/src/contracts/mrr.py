"""Monthly recurring revenue of one subscription, as the SPEC's "Metrics" section defines it.

The importer's metrics and the connector's offers (``mrr_before``/``mrr_after``) both use it.

Arithmetic is exact (rational numbers) until one final rounding to the minor unit, half up (a half
minor unit rounds away from zero; MRR is never negative). See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Final

from contracts.records import CouponRecord, Discount, Interval, SubscriptionItem, SubscriptionRecord

#: Months per interval unit as a fraction, so that ``× 52 ÷ 12`` stays exact.
_MONTHLY_FACTOR: Final[Mapping[str, Fraction]] = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}

_HUNDRED: Final = Fraction(100)
#: Beyond this, the whole-number path leaves MRR to the exact one (whose decimal division keeps 28
#: digits).
_WHOLE_NUMBERS_BELOW: Final = 10**18


def monthly_factor(interval: Interval, interval_count: int) -> Fraction:
    """What one billing period's amount is worth per month: e.g. ``year``, 1 → 1/12."""
    if interval_count < 1:
        raise ValueError("interval_count must be at least 1")
    return _MONTHLY_FACTOR[interval] / interval_count


def round_minor_units(value: Fraction) -> int:
    """Nearest whole minor unit, a half rounding up (away from zero)."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def item_monthly_amount(item: SubscriptionItem) -> Fraction:
    return item.unit_amount * item.quantity * monthly_factor(item.interval, item.interval_count)


def billing_factor(subscription: SubscriptionRecord) -> Fraction:
    """The monthly factor of the subscription's billing period (that of its first item).

    Both processors bill all recurring items of a subscription on one period, so an amount-off
    discount, which is per billing period, is normalised with the same factor as the items.
    """
    if not subscription.items:
        return Fraction(1)
    first = subscription.items[0]
    return monthly_factor(first.interval, first.interval_count)


def resolve_discount(
    discount: Discount, currency: str, coupons: Mapping[str, CouponRecord]
) -> tuple[Fraction | None, int | None]:
    """The discount's ``(percent_off, amount_off)``, from itself or else from its coupon.

    An amount-off coupon in another currency does not apply (processors refuse it); an unknown or
    one-time coupon is ``(None, None)``.
    """
    if discount.percent_off is not None or discount.amount_off is not None:
        percent = None if discount.percent_off is None else _fraction(discount.percent_off)
        return percent, discount.amount_off
    coupon = coupons.get(discount.coupon_id) if discount.coupon_id else None
    if coupon is None or coupon.duration == "once":
        # Unknown, or one-time: a one-time coupon reduces one invoice, not recurring revenue.
        return None, None
    if coupon.percent_off is not None:
        return _fraction(coupon.percent_off), None
    if coupon.amount_off is not None and coupon.amount_off.currency == currency:
        return None, coupon.amount_off.amount
    return None, None


def needs_coupons(subscription: SubscriptionRecord) -> bool:
    """Whether some discount is only a coupon reference, so MRR needs the coupons to be known."""
    return any(
        discount.percent_off is None and discount.amount_off is None and discount.coupon_id is not None
        for discount in subscription.discounts
    )


def exact_subscription_mrr(subscription: SubscriptionRecord, coupons: Mapping[str, CouponRecord]) -> Fraction:
    """MRR before rounding: items normalised to a month, less each discount in order, not below 0."""
    total = sum((item_monthly_amount(item) for item in subscription.items), Fraction(0))
    factor = billing_factor(subscription)
    for discount in subscription.discounts:
        percent, amount = resolve_discount(discount, subscription.currency, coupons)
        if percent is not None:
            total *= 1 - min(max(percent, Fraction(0)), _HUNDRED) / _HUNDRED
        if amount is not None:
            total -= amount * factor
        total = max(total, Fraction(0))
    return total


def subscription_mrr(subscription: SubscriptionRecord, coupons: Mapping[str, CouponRecord]) -> int:
    """MRR of ``subscription`` in minor units of its currency, whatever its status.

    Whether the subscription is paying (not in trial, paused or future) is the caller's question:
    a cancelled subscription's MRR is what its cancellation lost.
    """
    undiscounted = _undiscounted_mrr(subscription)
    if undiscounted is not None:
        return undiscounted
    return round_minor_units(exact_subscription_mrr(subscription, coupons))


def _undiscounted_mrr(subscription: SubscriptionRecord) -> int | None:
    """The common case in whole numbers, equal to the exact path's answer: no discount, every item
    on one billing period. The items' amounts sum to ``S`` per period, MRR is ``S × p / q`` (``p/q``
    the period's monthly factor) rounded half away from zero. ``None``: take the exact path."""
    if subscription.discounts or not subscription.items:
        return None
    first = subscription.items[0]
    unit, count = first.interval, first.interval_count
    total = 0
    for item in subscription.items:
        if item.interval != unit or item.interval_count != count:
            return None
        total += item.unit_amount * item.quantity
    factor = _MONTHLY_FACTOR[unit]
    numerator, denominator = total * factor.numerator, factor.denominator * count
    if count < 1 or abs(numerator) >= _WHOLE_NUMBERS_BELOW:
        return None
    whole = (2 * abs(numerator) + denominator) // (2 * denominator)
    return whole if numerator >= 0 else -whole


def _fraction(value: float) -> Fraction:
    # Through the shortest decimal repr, so that 33.33 % is 3333/10000 and not its binary neighbour.
    return Fraction(Decimal(repr(value)))
