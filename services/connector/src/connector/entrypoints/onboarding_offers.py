"""The onboarding page's offers demo: once the import is done, a coupon or a trial extension applied
to one of the account's subscriptions, through the same use case as ``POST …/offers``.

Each form carries an idempotency key made when the form is rendered, so the same form sent twice (a
double click, a reload of the answer) applies the offer once and shows the same answer; a new render
makes a new key. The forms appear only for the offer features the connection has; otherwise the page
says why they are off.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from contracts.events import Feature
from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData

from connector.domain.offers import AppliedOffer, CouponDuration, CouponTerms, OfferKind, OfferRequest
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_dependencies import dependencies_of
from connector.entrypoints.onboarding_forms import FormProblem, form_text
from connector.entrypoints.onboarding_rendering import (
    CSRF_FIELD,
    Session,
    page_context,
    redirect,
    render,
    status_of,
)
from connector.entrypoints.onboarding_session import ONBOARDING_PATH, OnboardingSession
from connector.entrypoints.onboarding_wording import CSRF_MESSAGE, money, offer_off_reason
from connector.service.apply_offer import OfferSubmission, apply_offer
from connector.service.offer_choices import offer_choices
from connector.service.onboarding_status import OnboardingStage, OnboardingStatus

IDEMPOTENCY_FIELD: Final = "idempotency_key"
KIND_FIELD: Final = "kind"
#: Which field of a form a refusal is about.
OFFER_FIELD_OF: Final[Mapping[RefusalCode, str]] = {
    RefusalCode.SUBSCRIPTION_NOT_FOUND: "subscription_id",
    RefusalCode.COUPON_NOT_FOUND: "coupon_id",
}
COUPON_SOURCE_MESSAGE: Final = (
    "Enter the id of an existing coupon, or a percent off to create one, but not both."
)
PERCENT_MESSAGE: Final = "Enter a percent off from 0.01 to 100, like 20."
DAYS_MESSAGE: Final = "Enter a number of days from 1 to 365."
MONTHS_MESSAGE: Final = "Enter the number of months the coupon repeats, from 1 to 120."
DURATIONS: Final[tuple[CouponDuration, ...]] = ("forever", "once", "repeating")

router = APIRouter(prefix=ONBOARDING_PATH, include_in_schema=False)


@dataclass(frozen=True)
class OfferProblem(FormProblem):
    """A refusal shown on one of the two forms."""

    form: OfferKind = "coupon"


class _BadField(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


def new_idempotency_key() -> str:
    return f"onboarding-{secrets.token_urlsafe(24)}"


def _offers_open(current: OnboardingStatus) -> bool:
    return current.stage is OnboardingStage.COMPLETE


async def _page(
    request: Request,
    session: OnboardingSession,
    current: OnboardingStatus,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    result: AppliedOffer | None = None,
    problem: OfferProblem | None = None,
    values: Mapping[str, str] | None = None,
) -> Response:
    choices = await offer_choices(dependencies_of(request), session.account_id)
    entered = dict(values or {})
    if choices.subscriptions and not entered.get("subscription_id"):
        entered["subscription_id"] = choices.subscriptions[0].subscription_id
    context: dict[str, Any] = {
        "choices": choices,
        "coupon_on": choices.on(Feature.COUPON_OFFERS),
        "trial_on": choices.on(Feature.TRIAL_EXTENSION_OFFERS),
        "coupon_off": offer_off_reason(choices.off.get(Feature.COUPON_OFFERS, "")),
        "trial_off": offer_off_reason(choices.off.get(Feature.TRIAL_EXTENSION_OFFERS, "")),
        "off_codes": {feature.value: reason for feature, reason in choices.off.items()},
        # A key per form and per render: the same form sent twice applies once.
        "coupon_key": new_idempotency_key(),
        "trial_key": new_idempotency_key(),
        "durations": DURATIONS,
        "result": result,
        "problem": problem,
        "values": entered,
        "money": money,
        "idempotency_field": IDEMPOTENCY_FIELD,
        **page_context(session, current),
    }
    return render(request, "offers.html", status_code=status_code, headers=headers, **context)


@router.get("/offers")
async def offers_demo(request: Request, session: Session) -> Response:
    current = await status_of(request, session)
    if not _offers_open(current):
        return redirect(ONBOARDING_PATH)
    return await _page(request, session, current)


@router.post("/offers")
async def offers_submit(request: Request, session: Session) -> Response:
    form = await request.form()
    kind: OfferKind = "trial_extension" if form_text(form, KIND_FIELD) == "trial_extension" else "coupon"
    values = {name: form_text(form, name) for name in _FIELDS}
    current = await status_of(request, session)
    if not _offers_open(current):
        return redirect(ONBOARDING_PATH)
    if not session.accepts(form_text(form, CSRF_FIELD)):
        request.state.outcome = "csrf"
        problem = OfferProblem(CSRF_MESSAGE, code="csrf", status_code=403, form=kind)
        return await _page(request, session, current, status_code=403, problem=problem, values=values)
    try:
        offer = _offer_request(kind, form)
    except _BadField as bad:
        request.state.outcome = RefusalCode.INVALID_REQUEST.value
        problem = OfferProblem(bad.message, bad.field_name, RefusalCode.INVALID_REQUEST.value, form=kind)
        return await _page(request, session, current, status_code=422, problem=problem, values=values)
    submission = OfferSubmission(
        account_id=session.account_id,
        idempotency_key=form_text(form, IDEMPOTENCY_FIELD) or None,
        request=offer,
    )
    try:
        applied = await apply_offer(dependencies_of(request), submission)
    except ConnectionRefused as refusal:
        request.state.outcome = refusal.code.value
        problem = OfferProblem.of(refusal, OFFER_FIELD_OF, form=kind)
        return await _page(
            request,
            session,
            current,
            status_code=problem.status_code,
            headers=problem.headers,
            problem=problem,
            values=values,
        )
    request.state.outcome = "offer_applied"
    # The forms come back empty but for the subscription: another offer is another decision.
    kept = {"subscription_id": values["subscription_id"]}
    return await _page(request, session, current, result=applied, values=kept)


_FIELDS: Final = ("subscription_id", "coupon_id", "percent_off", "duration", "duration_in_months", "days")


def _offer_request(kind: OfferKind, form: FormData) -> OfferRequest:
    """The form as the use case's request; :class:`_BadField` names the field that is wrong."""
    subscription_id = form_text(form, "subscription_id")
    if not subscription_id:
        raise _BadField("subscription_id", "Enter the id of one of your subscriptions.")
    try:
        if kind == "trial_extension":
            return OfferRequest(kind, subscription_id, days=_whole(form, "days", DAYS_MESSAGE))
        return OfferRequest(kind, subscription_id, **_coupon(form))
    except ConnectionRefused as refusal:
        field_name = "days" if kind == "trial_extension" else "percent_off"
        raise _BadField(field_name, refusal.message) from refusal


def _coupon(form: FormData) -> dict[str, Any]:
    coupon_id, percent = form_text(form, "coupon_id"), form_text(form, "percent_off")
    if bool(coupon_id) == bool(percent):
        raise _BadField("coupon_id", COUPON_SOURCE_MESSAGE)
    if coupon_id:
        return {"coupon_id": coupon_id}
    try:
        percent_off = Decimal(percent)
    except InvalidOperation:
        raise _BadField("percent_off", PERCENT_MESSAGE) from None
    if not percent_off.is_finite() or not Decimal(0) < percent_off <= Decimal(100):
        raise _BadField("percent_off", PERCENT_MESSAGE)
    duration = _duration(form_text(form, "duration"))
    months = _whole(form, "duration_in_months", MONTHS_MESSAGE) if duration == "repeating" else None
    try:
        terms = CouponTerms(duration=duration, percent_off=percent_off, duration_in_months=months)
    except ConnectionRefused as refusal:
        raise _BadField("duration_in_months", refusal.message) from refusal
    return {"coupon": terms}


def _duration(raw: str) -> CouponDuration:
    for duration in DURATIONS:
        if raw == duration:
            return duration
    raise _BadField("duration", "Choose how long the coupon lasts.")


def _whole(form: FormData, name: str, message: str) -> int:
    raw = form_text(form, name)
    if not raw.isdigit() or len(raw) > 6:
        raise _BadField(name, message)
    return int(raw)
