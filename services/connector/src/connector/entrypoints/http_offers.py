"""The offer routes of the connector (SPEC "Offers"): parse, call the use case, shape the answer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from connector.domain.offers import MAX_OFFERS_PAGE, AppliedOffer, CouponTerms, OfferRequest
from connector.entrypoints.http_dependencies import AuthorizedAccount, DependenciesDep
from connector.entrypoints.http_errors import error_responses
from connector.service.apply_offer import OfferSubmission, apply_offer, list_offers

router = APIRouter(prefix="/v1/accounts/{account_id}", tags=["offers"])

DEFAULT_OFFERS_PAGE = 20


class CouponBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: Annotated[str | None, Field(min_length=3, max_length=3)] = None
    duration: Literal["once", "repeating", "forever"]
    duration_in_months: int | None = None


class OfferBody(BaseModel):
    """``{"kind": "coupon", "subscription_id", "coupon_id"}``, ``{"kind": "coupon", "subscription_id",
    "coupon": {...}}`` or ``{"kind": "trial_extension", "subscription_id", "days"}``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["coupon", "trial_extension"]
    subscription_id: Annotated[str, Field(min_length=1, max_length=255)]
    coupon_id: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    coupon: CouponBody | None = None
    days: int | None = None

    def request(self) -> OfferRequest:
        coupon = None
        if self.coupon is not None:
            coupon = CouponTerms(
                duration=self.coupon.duration,
                percent_off=self.coupon.percent_off,
                amount_off=self.coupon.amount_off,
                currency=None if self.coupon.currency is None else self.coupon.currency.upper(),
                duration_in_months=self.coupon.duration_in_months,
            )
        return OfferRequest(
            kind=self.kind,
            subscription_id=self.subscription_id,
            coupon_id=self.coupon_id,
            coupon=coupon,
            days=self.days,
        )


class OfferView(BaseModel):
    offer_id: str
    kind: Literal["coupon", "trial_extension"]
    subscription_id: str
    status: Literal["applied"]
    applied_at: datetime
    currency: str
    mrr_before: int
    mrr_after: int


class OfferPage(BaseModel):
    items: list[OfferView]
    next_cursor: str | None


def _view(offer: AppliedOffer) -> OfferView:
    return OfferView(
        offer_id=offer.offer_id,
        kind=offer.kind,
        subscription_id=offer.subscription_id,
        status=offer.status,
        applied_at=offer.applied_at,
        currency=offer.currency,
        mrr_before=offer.mrr_before,
        mrr_after=offer.mrr_after,
    )


@router.post(
    "/offers",
    status_code=201,
    summary="Apply a coupon or a trial extension at the processor, once per Idempotency-Key",
    responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503),
)
async def post_offer(
    body: OfferBody,
    account_id: AuthorizedAccount,
    deps: DependenciesDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="1 to 255 characters; required")
    ] = None,
) -> OfferView:
    submission = OfferSubmission(
        account_id=account_id, idempotency_key=idempotency_key, request=body.request()
    )
    return _view(await apply_offer(deps, submission))


@router.get(
    "/offers",
    summary="The offers applied to the account's subscriptions, newest first",
    responses=error_responses(401, 403, 409, 422),
)
async def get_offers(
    account_id: AuthorizedAccount,
    deps: DependenciesDep,
    subscription_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_OFFERS_PAGE)] = DEFAULT_OFFERS_PAGE,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> OfferPage:
    offers, next_cursor = await list_offers(
        deps, account_id, subscription_id=subscription_id, limit=limit, cursor=cursor
    )
    return OfferPage(items=[_view(offer) for offer in offers], next_cursor=next_cursor)
