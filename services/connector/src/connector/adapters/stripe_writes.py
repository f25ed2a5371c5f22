"""Offers at Stripe through the official ``stripe`` SDK, acting with the account's OAuth access token.

The SDK's own retries are off (``max_network_retries=0``): a failed write is retried by the caller
replaying the offer, with the same ``Idempotency-Key``, so Stripe answers it from its idempotency
store instead of writing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

import stripe
from contracts.events import Processor
from contracts.records import Discount, SubscriptionItem

from connector.adapters.processor_http import retry_after_s
from connector.domain.offers import CouponTerms, OfferSubscription
from connector.domain.refusals import ConnectionRefused, RefusalCode, processor_unavailable, rate_limited

STRIPE: Final = "Stripe"
_INTERVALS: Final = frozenset({"day", "week", "month", "year"})


class StripeOffers:
    """One connected Stripe account's offer calls."""

    processor = Processor.STRIPE

    def __init__(self, access_token: str, *, api_base: str, timeout_s: float) -> None:
        self._client = stripe.StripeClient(
            access_token,
            base_addresses={"api": api_base},
            max_network_retries=0,
            http_client=stripe.HTTPXClient(timeout=timeout_s),
        )

    async def subscription(self, subscription_id: str) -> OfferSubscription:
        try:
            found = await self._client.v1.subscriptions.retrieve_async(
                subscription_id, {"expand": ["discounts"]}
            )
        except stripe.StripeError as error:
            raise _refusal(error, missing=RefusalCode.SUBSCRIPTION_NOT_FOUND) from error
        return offer_subscription(found.to_dict())

    async def live_subscriptions(self, limit: int) -> list[OfferSubscription]:
        # Stripe's list leaves out canceled subscriptions unless a status is asked for.
        try:
            page = await self._client.v1.subscriptions.list_async(
                {"limit": limit, "expand": ["data.discounts"]}
            )
        except stripe.StripeError as error:
            raise _refusal(error, missing=RefusalCode.SUBSCRIPTION_NOT_FOUND) from error
        found = (offer_subscription(subscription.to_dict()) for subscription in page.data)
        return [subscription for subscription in found if not subscription.ended][:limit]

    async def check_coupon(self, coupon_id: str) -> None:
        try:
            coupon = await self._client.v1.coupons.retrieve_async(coupon_id)
        except stripe.StripeError as error:
            raise _refusal(error, missing=RefusalCode.COUPON_NOT_FOUND) from error
        if not coupon.to_dict().get("valid", True):
            raise ConnectionRefused(
                RefusalCode.COUPON_NOT_FOUND, f"Coupon {coupon_id} can no longer be redeemed."
            )

    async def create_coupon(self, terms: CouponTerms, *, coupon_id: str, idempotency_key: str) -> str:
        params: dict[str, Any] = {"id": coupon_id, "duration": terms.duration}
        if terms.percent_off is not None:
            params["percent_off"] = float(terms.percent_off)
        if terms.amount_off is not None and terms.currency is not None:
            params["amount_off"] = terms.amount_off
            params["currency"] = terms.currency.lower()
        if terms.duration_in_months is not None:
            params["duration_in_months"] = terms.duration_in_months
        try:
            created = await self._client.v1.coupons.create_async(
                cast("Any", params), {"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as error:
            if error.code == "resource_already_exists":
                return coupon_id  # made by an earlier try whose answer was lost
            raise _refusal(error, missing=RefusalCode.COUPON_NOT_FOUND) from error
        except stripe.StripeError as error:
            raise _refusal(error, missing=RefusalCode.COUPON_NOT_FOUND) from error
        return str(created.id)

    async def apply_coupon(
        self, subscription_id: str, coupon_id: str, *, idempotency_key: str
    ) -> OfferSubscription:
        params: dict[str, Any] = {"discounts": [{"coupon": coupon_id}], "expand": ["discounts"]}
        return await self._update(subscription_id, params, idempotency_key, missing_param="coupon")

    async def move_end(
        self, subscription_id: str, new_end: datetime, *, idempotency_key: str
    ) -> OfferSubscription:
        # A trial end on an active subscription gives it free days: no proration, nothing charged.
        params: dict[str, Any] = {
            "trial_end": int(new_end.timestamp()),
            "proration_behavior": "none",
            "expand": ["discounts"],
        }
        return await self._update(subscription_id, params, idempotency_key, missing_param=None)

    async def _update(
        self, subscription_id: str, params: dict[str, Any], idempotency_key: str, *, missing_param: str | None
    ) -> OfferSubscription:
        try:
            updated = await self._client.v1.subscriptions.update_async(
                subscription_id, cast("Any", params), {"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as error:
            param = error.param or ""
            if error.code == "resource_missing" and param != "id" and missing_param is not None:
                raise _refusal(error, missing=RefusalCode.COUPON_NOT_FOUND) from error
            raise _refusal(error, missing=RefusalCode.SUBSCRIPTION_NOT_FOUND) from error
        except stripe.StripeError as error:
            raise _refusal(error, missing=RefusalCode.SUBSCRIPTION_NOT_FOUND) from error
        return offer_subscription(updated.to_dict())


def _refusal(error: stripe.StripeError, *, missing: RefusalCode) -> ConnectionRefused:
    """Stripe's answer as the offer's refusal; never quotes Stripe's message (it may echo a key)."""
    retry_after = retry_after_s(error.headers)
    if isinstance(error, stripe.RateLimitError) or error.http_status == 429:
        return rate_limited(STRIPE, retry_after)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return ConnectionRefused(
            RefusalCode.FEATURE_UNAVAILABLE,
            "Stripe no longer lets us change this account's subscriptions; reconnect it with write access.",
        )
    if isinstance(error, stripe.InvalidRequestError) and error.http_status in (400, 404):
        if error.code == "resource_missing":
            what = "subscription" if missing is RefusalCode.SUBSCRIPTION_NOT_FOUND else "coupon"
            return ConnectionRefused(missing, f"Stripe has no such {what}.")
        return ConnectionRefused(
            RefusalCode.OFFER_NOT_APPLICABLE,
            "Stripe refused the offer for this subscription"
            + (f" (parameter {error.param})." if error.param else "."),
        )
    return processor_unavailable(STRIPE, retry_after)


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int | float) else None


def offer_subscription(raw: Mapping[str, Any]) -> OfferSubscription:
    """A subscription as Stripe answers it (``discount`` or expanded ``discounts``)."""
    currency = str(raw.get("currency") or "").upper()
    items: list[SubscriptionItem] = []
    for item in (raw.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        plan = item.get("plan") or {}
        interval = recurring.get("interval") or plan.get("interval") or "month"
        items.append(
            SubscriptionItem(
                price_id=price.get("id") or plan.get("id"),
                unit_amount=int(price.get("unit_amount") or plan.get("amount") or 0),
                quantity=int(item.get("quantity") or 1),
                interval=interval if interval in _INTERVALS else "month",
                interval_count=int(recurring.get("interval_count") or plan.get("interval_count") or 1),
            )
        )
    entries = [d for d in raw.get("discounts") or [] if isinstance(d, Mapping)]
    if not entries and isinstance(raw.get("discount"), Mapping):
        entries = [raw["discount"]]
    discounts: list[Discount] = []
    for entry in entries:
        coupon = entry.get("coupon") or (entry.get("source") or {}).get("coupon")
        if not isinstance(coupon, Mapping) or coupon.get("duration") == "once":
            continue  # a one-time coupon does not lower MRR
        amount = coupon.get("amount_off")
        if amount is not None and str(coupon.get("currency") or "").upper() != currency:
            amount = 0
        percent = coupon.get("percent_off")
        discounts.append(
            Discount(
                coupon_id=coupon.get("id"),
                percent_off=None if percent is None else float(percent),
                amount_off=None if amount is None else int(amount),
            )
        )
    customer = raw.get("customer")
    return OfferSubscription(
        subscription_id=str(raw.get("id")),
        customer_id=str(customer.get("id") if isinstance(customer, Mapping) else customer),
        status=str(raw.get("status")),
        currency=currency,
        items=items,
        discounts=discounts,
        trial_end=_when(raw.get("trial_end")),
        current_period_end=_when(raw.get("current_period_end"))
        or _when(((raw.get("items") or {}).get("data") or [{}])[0].get("current_period_end")),
    )
