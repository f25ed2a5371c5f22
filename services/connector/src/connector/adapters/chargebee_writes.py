"""Offers at Chargebee through the official ``chargebee`` SDK (v3, its async client).

Its retries are off (the SDK's default, kept: a failed write is retried by the caller replaying the
offer with the same ``chargebee-idempotency-key``). The SDK builds ``{protocol}://{site}.{domain}``
URLs; the connector points it at ``CHARGEBEE_API_URL_TEMPLATE`` instead (the sandbox, a proxy).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from chargebee import APIError, Chargebee
from contracts.events import Processor
from contracts.records import Discount, Interval, SubscriptionItem

from connector.domain.offers import CouponTerms, OfferSubscription
from connector.domain.ports import ProductCatalog
from connector.domain.refusals import ConnectionRefused, RefusalCode, processor_unavailable, rate_limited

CHARGEBEE: Final = "Chargebee"
_DURATIONS: Final = {"once": "one_time", "forever": "forever", "repeating": "limited_period"}
_INTERVALS: Final[frozenset[str]] = frozenset({"day", "week", "month", "year"})


def _point_at(client: Chargebee, api_url: str) -> None:
    client.env.api_endpoint = api_url.rstrip("/")
    if urlsplit(api_url).scheme == "http":
        # The SDK sends https unless certificate checks are off: only ever for a plain-http
        # CHARGEBEE_API_URL_TEMPLATE (the local sandbox).
        client.env.protocol = "http"
        Chargebee.verify_ca_certs = False


class ChargebeeOffers:
    """One connected Chargebee site's offer calls."""

    processor = Processor.CHARGEBEE

    def __init__(
        self, api_key: str, *, site: str, api_url: str, catalog: ProductCatalog, timeout_s: float
    ) -> None:
        self._client = Chargebee(
            api_key=api_key,
            site=site,
            use_async_client=True,
            connection_time_out=int(max(1, timeout_s)),
            read_time_out=int(max(1, timeout_s)),
        )
        _point_at(self._client, api_url)
        self._catalog = catalog

    async def subscription(self, subscription_id: str) -> OfferSubscription:
        with _answered(missing=RefusalCode.SUBSCRIPTION_NOT_FOUND):
            response = await self._client.Subscription.retrieve(subscription_id)
        return await self._offer_subscription(response.subscription.raw_data)

    async def live_subscriptions(self, limit: int) -> list[OfferSubscription]:
        with _answered(missing=RefusalCode.SUBSCRIPTION_NOT_FOUND):
            response = await self._client.Subscription.list({"limit": limit, "status[is_not]": "cancelled"})
        found = [await self._offer_subscription(entry.subscription.raw_data) for entry in response.list]
        return [subscription for subscription in found if not subscription.ended][:limit]

    async def check_coupon(self, coupon_id: str) -> None:
        coupon = await self._coupon(coupon_id)
        if coupon.get("status") not in (None, "active"):
            raise ConnectionRefused(RefusalCode.COUPON_NOT_FOUND, f"Coupon {coupon_id} is not active.")

    async def create_coupon(self, terms: CouponTerms, *, coupon_id: str, idempotency_key: str) -> str:
        params: dict[str, Any] = {
            "id": coupon_id,
            "name": coupon_id,
            "duration_type": _DURATIONS[terms.duration],
            "apply_on": "invoice_amount",
        }
        if terms.percent_off is not None:
            params |= {"discount_type": "percentage", "discount_percentage": float(terms.percent_off)}
        else:
            params |= {
                "discount_type": "fixed_amount",
                "discount_amount": terms.amount_off,
                "currency_code": terms.currency,
            }
        if terms.duration_in_months is not None:
            if self._catalog == "1.0":
                params["duration_month"] = terms.duration_in_months
            else:
                params |= {"period": terms.duration_in_months, "period_unit": "month"}
        headers = {Chargebee.idempotency_header: idempotency_key}
        try:
            if self._catalog == "1.0":
                await self._client.Coupon.create(params, headers)
            else:
                await self._client.Coupon.create_for_items(params, headers)
        except APIError as error:
            if error.api_error_code == "duplicate_entry":
                return coupon_id  # made by an earlier try whose answer was lost
            raise _refusal(error, missing=RefusalCode.COUPON_NOT_FOUND) from error
        except Exception as error:
            raise processor_unavailable(CHARGEBEE) from error
        return coupon_id

    async def apply_coupon(
        self, subscription_id: str, coupon_id: str, *, idempotency_key: str
    ) -> OfferSubscription:
        params: dict[str, Any] = {"coupon_ids": [coupon_id]}
        headers = {Chargebee.idempotency_header: idempotency_key}
        try:
            if self._catalog == "1.0":
                response: Any = await self._client.Subscription.update(subscription_id, params, headers)
            else:
                response = await self._client.Subscription.update_for_items(subscription_id, params, headers)
        except APIError as error:
            coupon_param = str(error.param or "").startswith("coupon_ids")
            missing = RefusalCode.COUPON_NOT_FOUND if coupon_param else RefusalCode.SUBSCRIPTION_NOT_FOUND
            raise _refusal(error, missing=missing) from error
        except Exception as error:
            raise processor_unavailable(CHARGEBEE) from error
        return await self._offer_subscription(response.subscription.raw_data)

    async def move_end(
        self, subscription_id: str, new_end: datetime, *, idempotency_key: str
    ) -> OfferSubscription:
        params = {"term_ends_at": int(new_end.timestamp()), "prorate": False}
        headers = {Chargebee.idempotency_header: idempotency_key}
        with _answered(missing=RefusalCode.SUBSCRIPTION_NOT_FOUND):
            response = await self._client.Subscription.change_term_end(subscription_id, params, headers)
        return await self._offer_subscription(response.subscription.raw_data)

    async def _coupon(self, coupon_id: str) -> Mapping[str, Any]:
        with _answered(missing=RefusalCode.COUPON_NOT_FOUND):
            response = await self._client.Coupon.retrieve(coupon_id)
        raw: Mapping[str, Any] = response.coupon.raw_data
        return raw

    async def _offer_subscription(self, raw: Mapping[str, Any]) -> OfferSubscription:
        currency = str(raw.get("currency_code") or "").upper()
        discounts: list[Discount] = []
        for applied in raw.get("coupons") or []:
            coupon = await self._coupon(str(applied.get("coupon_id")))
            discount = _discount(coupon, currency)
            if discount is not None:
                discounts.append(discount)
        return offer_subscription(raw, discounts)


def _discount(coupon: Mapping[str, Any], currency: str) -> Discount | None:
    if coupon.get("duration_type") == "one_time":
        return None
    if coupon.get("discount_type") == "percentage":
        return Discount(coupon_id=coupon.get("id"), percent_off=float(coupon.get("discount_percentage") or 0))
    if coupon.get("discount_type") == "fixed_amount":
        same = str(coupon.get("currency_code") or currency).upper() == currency
        return Discount(
            coupon_id=coupon.get("id"), amount_off=int(coupon.get("discount_amount") or 0) if same else 0
        )
    return None


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int | float) else None


def offer_subscription(raw: Mapping[str, Any], discounts: list[Discount]) -> OfferSubscription:
    """A subscription as Chargebee answers it: catalog 2.0 ``subscription_items`` or 1.0 plan and addons."""
    unit = str(raw.get("billing_period_unit") or "month")
    interval: Interval = unit if unit in _INTERVALS else "month"  # type: ignore[assignment]
    count = int(raw.get("billing_period") or 1)

    def billed(
        price_id: Any, entry: Mapping[str, Any], price_field: str, quantity_field: str
    ) -> SubscriptionItem:
        return SubscriptionItem(
            price_id=price_id,
            unit_amount=int(entry.get(price_field) or 0),
            quantity=int(entry.get(quantity_field) or 1),
            interval=interval,
            interval_count=count,
        )

    items = [
        billed(item.get("item_price_id"), item, "unit_price", "quantity")
        for item in raw.get("subscription_items") or []
        if item.get("item_type") in ("plan", "addon")
    ]
    if raw.get("plan_id"):
        items.append(billed(raw.get("plan_id"), raw, "plan_unit_price", "plan_quantity"))
        items.extend(
            billed(addon.get("id"), addon, "unit_price", "quantity") for addon in raw.get("addons") or []
        )
    return OfferSubscription(
        subscription_id=str(raw.get("id")),
        customer_id=str(raw.get("customer_id")),
        status=str(raw.get("status")),
        currency=str(raw.get("currency_code") or "").upper(),
        items=items,
        discounts=discounts,
        trial_end=_when(raw.get("trial_end")),
        current_period_end=_when(raw.get("next_billing_at") or raw.get("current_term_end")),
    )


@contextmanager
def _answered(*, missing: RefusalCode) -> Iterator[None]:
    """A call whose refusal becomes the offer's (:func:`_refusal`); any other failure, unavailable."""
    try:
        yield
    except APIError as error:
        raise _refusal(error, missing=missing) from error
    except Exception as error:
        raise processor_unavailable(CHARGEBEE) from error


def _refusal(error: APIError, *, missing: RefusalCode) -> ConnectionRefused:
    """Chargebee's answer as the offer's refusal; never quotes Chargebee's message."""
    status = int(error.http_status_code or 0)
    if status == 429:
        headers = error.http_headers or {}
        raw = headers.get("retry-after") or headers.get("Retry-After")
        return rate_limited(CHARGEBEE, int(raw) if raw and str(raw).isdigit() else None)
    if status in (401, 403):
        return ConnectionRefused(
            RefusalCode.FEATURE_UNAVAILABLE,
            "Chargebee no longer lets us change this site's subscriptions; reconnect it with a "
            "full-access key.",
        )
    if status == 404:
        what = "subscription" if missing is RefusalCode.SUBSCRIPTION_NOT_FOUND else "coupon"
        return ConnectionRefused(missing, f"Chargebee has no such {what}.")
    if 400 <= status < 500:
        return ConnectionRefused(
            RefusalCode.OFFER_NOT_APPLICABLE,
            f"Chargebee refused the offer for this subscription ({error.api_error_code}).",
        )
    return processor_unavailable(CHARGEBEE)
