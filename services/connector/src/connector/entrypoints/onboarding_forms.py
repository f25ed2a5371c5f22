"""The onboarding page's forms that connect Stripe (API key, then OAuth) or Chargebee (site and key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import SecretStr
from starlette.datastructures import FormData

from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_dependencies import dependencies_of
from connector.entrypoints.http_errors import STATUS_OF
from connector.entrypoints.onboarding_rendering import (
    CSRF_FIELD,
    Session,
    page_config,
    page_context,
    redirect,
    render,
    status_of,
)
from connector.entrypoints.onboarding_session import ONBOARDING_PATH, OnboardingSession, valid_email
from connector.entrypoints.onboarding_wording import CSRF_MESSAGE, EMAIL_MESSAGE
from connector.service.connect_chargebee import (
    ChargebeeConnected,
    ChargebeeCredentialsSubmission,
    connect_chargebee,
    webhook_url,
)
from connector.service.connect_stripe import StripeKeySubmission, connect_stripe
from connector.service.onboarding_status import OnboardingStage, OnboardingStatus

FORM_FIELD_MAX_LENGTH: Final = 512
#: Which form field a refusal is about, so its message appears next to that field.
FIELD_OF: Final[Mapping[RefusalCode, str]] = {
    RefusalCode.INVALID_KEY_FORMAT: "api_key",
    RefusalCode.PUBLISHABLE_KEY: "api_key",
    RefusalCode.KEY_REJECTED: "api_key",
    RefusalCode.INSUFFICIENT_PERMISSIONS: "api_key",
    RefusalCode.INVALID_SITE: "site",
    RefusalCode.SITE_NOT_FOUND: "site",
    RefusalCode.SITE_BLOCKED: "site",
}

router = APIRouter(prefix=ONBOARDING_PATH, include_in_schema=False)


@dataclass(frozen=True)
class FormProblem:
    """A refusal shown on the form: next to its field when it concerns one, else above the form."""

    message: str
    field_name: str | None = None
    code: str | None = None
    status_code: int = 422
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, refusal: ConnectionRefused, field_of: Mapping[RefusalCode, str], **more: Any) -> Self:
        """A use case's refusal, next to the field ``field_of`` names for its code."""
        return cls(
            refusal.message,
            field_of.get(refusal.code),
            refusal.code.value,
            status_code=STATUS_OF.get(refusal.code, 422),
            headers={} if refusal.retry_after_s is None else {"Retry-After": str(refusal.retry_after_s)},
            **more,
        )


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:FORM_FIELD_MAX_LENGTH] if isinstance(value, str) else ""


def _can_connect(status: OnboardingStatus) -> bool:
    return status.stage in (OnboardingStage.CHOOSE, OnboardingStage.SKIPPED, OnboardingStage.RECONNECT)


async def _blank_form(request: Request, session: OnboardingSession, template: str, **values: str) -> Response:
    """A connect form to fill in, while the account may still connect; else back to the page."""
    current = await status_of(request, session)
    if not _can_connect(current) or current.stage is OnboardingStage.RECONNECT:
        # A connection to reconnect has its own form on the home page (the site filled in).
        return redirect(ONBOARDING_PATH)
    email = session.contact_email or ""
    context: dict[str, Any] = {"email": email, **values, **page_context(session, current)}
    return render(request, template, **context)


@router.get("/stripe")
async def stripe_form(request: Request, session: Session) -> Response:
    return await _blank_form(request, session, "stripe.html")


async def _checked_form(request: Request, session: OnboardingSession) -> tuple[FormData, FormProblem | None]:
    """The posted form, and what is wrong with it before any use case is asked."""
    form = await request.form()
    if not session.accepts(form_text(form, CSRF_FIELD)):
        return form, FormProblem(CSRF_MESSAGE, code="csrf", status_code=403)
    if not valid_email(form_text(form, "contact_email")):
        return form, FormProblem(EMAIL_MESSAGE, "contact_email", RefusalCode.INVALID_REQUEST.value)
    return form, None


async def _form_again(
    request: Request, session: OnboardingSession, template: str, problem: FormProblem, **values: str
) -> HTMLResponse:
    request.state.outcome = problem.code
    current = await status_of(request, session)
    if current.stage is OnboardingStage.RECONNECT:
        template = "reconnect.html"
        values = {"site": current.site or "", **values}
    return render(
        request,
        template,
        status_code=problem.status_code,
        headers=problem.headers,
        problem=problem,
        **values,
        **page_context(session, current),
    )


@router.post("/stripe")
async def stripe_submit(request: Request, session: Session) -> Response:
    form, problem = await _checked_form(request, session)
    if problem is None:
        try:
            pending = await connect_stripe(
                dependencies_of(request),
                StripeKeySubmission(
                    account_id=session.account_id,
                    api_key=SecretStr(form_text(form, "api_key")),
                    contact_email=form_text(form, "contact_email"),
                    return_url=page_config(request).return_url,
                ),
            )
        except ConnectionRefused as refusal:
            if refusal.code is RefusalCode.ALREADY_CONNECTED:
                return redirect(ONBOARDING_PATH)
            problem = FormProblem.of(refusal, FIELD_OF)
        else:
            request.state.outcome = "awaiting_authorization"
            return redirect(pending.authorize_url)
    # The key is never written back into the page: the person pastes it again.
    return await _form_again(request, session, "stripe.html", problem, email=form_text(form, "contact_email"))


@router.get("/chargebee")
async def chargebee_form(request: Request, session: Session) -> Response:
    return await _blank_form(request, session, "chargebee.html", site="")


@router.post("/chargebee")
async def chargebee_submit(request: Request, session: Session) -> Response:
    form, problem = await _checked_form(request, session)
    if problem is None:
        try:
            connected = await connect_chargebee(
                dependencies_of(request),
                ChargebeeCredentialsSubmission(
                    account_id=session.account_id,
                    site=form_text(form, "site"),
                    api_key=SecretStr(form_text(form, "api_key")),
                    contact_email=form_text(form, "contact_email"),
                ),
            )
        except ConnectionRefused as refusal:
            if refusal.code is RefusalCode.ALREADY_CONNECTED:
                return redirect(ONBOARDING_PATH)
            problem = FormProblem.of(refusal, FIELD_OF)
        else:
            request.state.outcome = "connected"
            if isinstance(connected, ChargebeeConnected):
                return await _connected_with_webhook(request, session, connected)
            return redirect(ONBOARDING_PATH)  # reconnected: its webhook credentials stay as they were
    return await _form_again(
        request,
        session,
        "chargebee.html",
        problem,
        email=form_text(form, "contact_email"),
        site=form_text(form, "site"),
    )


async def _connected_with_webhook(
    request: Request, session: OnboardingSession, connected: ChargebeeConnected
) -> Response:
    """The import's progress, with the connection's Chargebee webhook credentials: shown this once
    (only their hash is stored), so this answer is the page itself, not a redirect to it. The
    progress updates in place; without a script, a link leads on to the page that refreshes."""
    url = webhook_url(dependencies_of(request), connected.connection_id)
    current = await status_of(request, session)
    return render(
        request,
        "progress.html",
        chargebee_webhook={
            "url": url,
            "username": connected.webhook.username,
            "password": connected.webhook.password.get_secret_value(),
        },
        **page_context(session, current),
    )
