"""The onboarding page: a server-rendered walk through connecting Stripe or Chargebee, or skipping.

A reference for the gateway team and a way for a newcomer to try the product. Every form posts to
the same use cases as the HTTP API and the Kafka intake; the account comes only from the signed link
(see :mod:`connector.entrypoints.onboarding_session`), never from a form. Forms work without
JavaScript; ``static/onboarding.js`` only refreshes the import's progress in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

from contracts.events import SKIP_DISABLED_FEATURES, Feature, Processor
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import SecretStr
from starlette.datastructures import FormData

from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_dependencies import services_of
from connector.entrypoints.http_errors import STATUS_OF
from connector.entrypoints.onboarding_session import (
    ONBOARDING_PATH,
    SESSION_COOKIE,
    InvalidLink,
    OnboardingSession,
    OnboardingSessions,
    valid_email,
)
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.connect_stripe import StripeKeySubmission, connect_stripe
from connector.service.onboarding_status import OnboardingStage, OnboardingStatus, onboarding_status
from connector.service.request_import import request_import
from connector.service.skip_connection import SkipRequest, skip_connection
from connector.settings import ConnectorSettings

_PACKAGE_DIR: Final = Path(__file__).resolve().parent.parent
TEMPLATES_DIR: Final = _PACKAGE_DIR / "templates" / "onboarding"
STATIC_DIR: Final = _PACKAGE_DIR / "static"
STATIC_PATH: Final = f"{ONBOARDING_PATH}/static"
#: How often the page reloads itself while an import runs, when JavaScript is off.
NO_SCRIPT_REFRESH_S: Final = 3
#: How often the script asks for progress while an import runs.
POLL_INTERVAL_MS: Final = 1500
FORM_FIELD_MAX_LENGTH: Final = 512

CSRF_FIELD: Final = "csrf_token"
#: Which form field a refusal is about, so its message appears next to that field.
_FIELD_OF: Final[Mapping[RefusalCode, str]] = {
    RefusalCode.INVALID_KEY_FORMAT: "api_key",
    RefusalCode.PUBLISHABLE_KEY: "api_key",
    RefusalCode.KEY_REJECTED: "api_key",
    RefusalCode.INSUFFICIENT_PERMISSIONS: "api_key",
    RefusalCode.INVALID_SITE: "site",
    RefusalCode.SITE_NOT_FOUND: "site",
    RefusalCode.SITE_BLOCKED: "site",
}
#: What the Stripe callback's ``?status=error&code=…`` means for the person (never the query's text).
_STRIPE_RETURN_MESSAGES: Final[Mapping[str, str]] = {
    RefusalCode.ACCOUNT_MISMATCH: "You authorized a different Stripe account than the one the API key "
    "belongs to. Sign in to the key's account on Stripe and start again.",
    RefusalCode.AUTHORIZATION_FAILED: "Stripe did not complete the authorization. Please start the "
    "connection again.",
    RefusalCode.PROCESSOR_UNAVAILABLE: "Stripe did not answer in time. Nothing was saved; please try "
    "again in a moment.",
    RefusalCode.RATE_LIMITED: "Stripe is limiting requests right now. Nothing was saved; please try "
    "again shortly.",
}
_STRIPE_DENIED_MESSAGE: Final = (
    "You did not allow access on Stripe, so nothing was connected. You can start again, connect "
    "Chargebee instead or skip this step."
)
_STRIPE_ERROR_MESSAGE: Final = "Stripe could not be connected. Please start the connection again."
_EMAIL_MESSAGE: Final = (
    "Enter the email address where we should tell you that the import is done, like name@example.com."
)
_CSRF_MESSAGE: Final = "This form is out of date. Nothing was saved; please fill it in again."
PROCESSOR_NAMES: Final = {Processor.STRIPE: "Stripe", Processor.CHARGEBEE: "Chargebee"}
FEATURE_DESCRIPTIONS: Final[Mapping[Feature, tuple[str, str]]] = {
    Feature.PAST_CANCELLATIONS: ("Past cancellations", "who cancelled before today, when and why"),
    Feature.CHURN_METRICS: ("Churn metrics", "customer and revenue churn month by month"),
    Feature.RECOVERED_REVENUE: ("Recovered revenue", "what won-back customers are worth"),
    Feature.COUPON_OFFERS: ("Coupon offers", "discounts offered to people about to cancel"),
    Feature.TRIAL_EXTENSION_OFFERS: (
        "Trial extension offers",
        "longer trials offered instead of a cancellation",
    ),
}
#: The order resources are listed in; any other resource the importer reports follows, by name.
_RESOURCE_ORDER: Final = ("customers", "subscriptions", "invoices", "prices", "products", "plans", "coupons")

_PAGE_HEADERS: Final = {
    # The link's token must not leak through a Referer, a cache or a frame.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

router = APIRouter(prefix=ONBOARDING_PATH, include_in_schema=False)


@dataclass(frozen=True)
class OnboardingPageConfig:
    sessions: OnboardingSessions
    #: Where Stripe's callback sends the browser back: this page, on the public base URL.
    return_url: str
    secure_cookies: bool


@dataclass(frozen=True)
class FormProblem:
    """A refusal shown on the form: next to its field when it concerns one, else above the form."""

    message: str
    field_name: str | None = None
    code: str | None = None
    status_code: int = 422
    headers: Mapping[str, str] = field(default_factory=dict)


def install_onboarding_page(app: FastAPI, settings: ConnectorSettings) -> None:
    """Serve the page under ``/onboarding`` (routes, templates' static files) on ``app``."""
    app.state.onboarding = OnboardingPageConfig(
        sessions=OnboardingSessions(settings.api_jwt_secret),
        return_url=f"{settings.public_base_url}{ONBOARDING_PATH}",
        secure_cookies=settings.public_base_url.startswith("https://"),
    )
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="onboarding-static")


_templates = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def resource_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def ordered_resources(resources: Mapping[str, int]) -> list[tuple[str, int]]:
    known = [(name, resources[name]) for name in _RESOURCE_ORDER if name in resources]
    others = sorted((name, count) for name, count in resources.items() if name not in _RESOURCE_ORDER)
    return known + others


_templates.globals.update(
    static=lambda name: f"{STATIC_PATH}/{name}",
    path=lambda step="": f"{ONBOARDING_PATH}/{step}" if step else ONBOARDING_PATH,
    resource_label=resource_label,
    ordered_resources=ordered_resources,
    processor_names=PROCESSOR_NAMES,
    feature_descriptions=FEATURE_DESCRIPTIONS,
    poll_interval_ms=POLL_INTERVAL_MS,
    csrf_field=CSRF_FIELD,
)


def _config(request: Request) -> OnboardingPageConfig:
    config: OnboardingPageConfig = request.app.state.onboarding
    return config


def _render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    all_headers = {**_PAGE_HEADERS, "Content-Security-Policy": _policy(request), **(headers or {})}
    return HTMLResponse(html, status_code=status_code, headers=all_headers)


def _policy(request: Request) -> str:
    # The Stripe form's answer is a redirect to Stripe's authorize page, which form-action must allow.
    connect_base = services_of(request).stripe_platform.connect_base
    return (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
        f"form-action 'self' {connect_base}; frame-ancestors 'none'; base-uri 'none'"
    )


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=_PAGE_HEADERS)


def _session(request: Request) -> OnboardingSession | None:
    session = _config(request).sessions.from_cookie(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        request.state.account_id = session.account_id
    return session


def _no_session(request: Request) -> HTMLResponse:
    request.state.outcome = "no_session"
    return _render(request, "expired.html", status_code=401)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:FORM_FIELD_MAX_LENGTH] if isinstance(value, str) else ""


def _problem(refusal: ConnectionRefused) -> FormProblem:
    return FormProblem(
        refusal.message,
        _FIELD_OF.get(refusal.code),
        refusal.code.value,
        status_code=STATUS_OF.get(refusal.code, 422),
        headers={} if refusal.retry_after_s is None else {"Retry-After": str(refusal.retry_after_s)},
    )


def _stripe_return_notice(stage: OnboardingStage, status: str | None, code: str | None) -> str | None:
    """What to say after Stripe sent the person back, when nothing got connected."""
    if stage is not OnboardingStage.CHOOSE or status not in ("denied", "error"):
        return None
    if status == "denied":
        return _STRIPE_DENIED_MESSAGE
    return _STRIPE_RETURN_MESSAGES.get(code or "", _STRIPE_ERROR_MESSAGE)


async def _status(request: Request, session: OnboardingSession) -> OnboardingStatus:
    return await onboarding_status(services_of(request), session.account_id)


def _page_context(session: OnboardingSession, status: OnboardingStatus) -> dict[str, Any]:
    return {"session": session, "status": status, "stage": status.stage.value}


def _can_connect(status: OnboardingStatus) -> bool:
    return status.stage in (OnboardingStage.CHOOSE, OnboardingStage.SKIPPED)


CallbackParam = Annotated[str | None, Query(max_length=64)]
LinkParam = Annotated[str | None, Query(max_length=4096)]


@router.get("", name="onboarding_home")
async def onboarding_home(
    request: Request, token: LinkParam = None, status: CallbackParam = None, code: CallbackParam = None
) -> Response:
    config = _config(request)
    if token is not None:
        try:
            opened = config.sessions.open(token)
        except InvalidLink:
            request.state.outcome = "invalid_link"
            return _render(request, "expired.html", status_code=401, invalid_link=True)
        request.state.account_id = opened.account_id
        # The token leaves the address bar (and the history) at once; the cookie carries the session.
        response = _redirect(ONBOARDING_PATH)
        response.set_cookie(
            SESSION_COOKIE,
            config.sessions.cookie_value(opened),
            max_age=config.sessions.session_ttl_s,
            path=ONBOARDING_PATH,
            secure=config.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response
    session = _session(request)
    if session is None:
        return _no_session(request)
    current = await _status(request, session)
    context = _page_context(session, current)
    match current.stage:
        case OnboardingStage.CHOOSE:
            return _render(
                request, "choose.html", notice=_stripe_return_notice(current.stage, status, code), **context
            )
        case OnboardingStage.SKIPPED:
            return _render(request, "skipped.html", **context)
        case _:
            return _render(
                request,
                "progress.html",
                just_connected=status == "connected",
                refresh_s=None if current.stage.finished else NO_SCRIPT_REFRESH_S,
                **context,
            )


@router.get("/progress")
async def onboarding_progress(request: Request) -> Response:
    """The progress section alone, which the script swaps in while an import runs."""
    session = _session(request)
    if session is None:
        return _no_session(request)
    current = await _status(request, session)
    return _render(request, "_progress.html", **_page_context(session, current))


@router.get("/stripe")
async def stripe_form(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _no_session(request)
    current = await _status(request, session)
    if not _can_connect(current):
        return _redirect(ONBOARDING_PATH)
    return _render(
        request, "stripe.html", email=session.contact_email or "", **_page_context(session, current)
    )


async def _checked_form(request: Request, session: OnboardingSession) -> tuple[FormData, FormProblem | None]:
    """The posted form, and what is wrong with it before any use case is asked."""
    form = await request.form()
    if not session.accepts(_text(form, CSRF_FIELD)):
        return form, FormProblem(_CSRF_MESSAGE, code="csrf", status_code=403)
    if not valid_email(_text(form, "contact_email")):
        return form, FormProblem(_EMAIL_MESSAGE, "contact_email", RefusalCode.INVALID_REQUEST.value)
    return form, None


async def _form_again(
    request: Request, session: OnboardingSession, template: str, problem: FormProblem, **values: str
) -> HTMLResponse:
    request.state.outcome = problem.code
    current = await _status(request, session)
    return _render(
        request,
        template,
        status_code=problem.status_code,
        headers=problem.headers,
        problem=problem,
        **values,
        **_page_context(session, current),
    )


@router.post("/stripe")
async def stripe_submit(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _no_session(request)
    form, problem = await _checked_form(request, session)
    if problem is None:
        try:
            pending = await connect_stripe(
                services_of(request),
                StripeKeySubmission(
                    account_id=session.account_id,
                    api_key=SecretStr(_text(form, "api_key")),
                    contact_email=_text(form, "contact_email"),
                    return_url=_config(request).return_url,
                ),
            )
        except ConnectionRefused as refusal:
            if refusal.code is RefusalCode.ALREADY_CONNECTED:
                return _redirect(ONBOARDING_PATH)
            problem = _problem(refusal)
        else:
            request.state.outcome = "awaiting_authorization"
            return _redirect(pending.authorize_url)
    # The key is never written back into the page: the person pastes it again.
    return await _form_again(request, session, "stripe.html", problem, email=_text(form, "contact_email"))


@router.get("/chargebee")
async def chargebee_form(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _no_session(request)
    current = await _status(request, session)
    if not _can_connect(current):
        return _redirect(ONBOARDING_PATH)
    return _render(
        request,
        "chargebee.html",
        email=session.contact_email or "",
        site="",
        **_page_context(session, current),
    )


@router.post("/chargebee")
async def chargebee_submit(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _no_session(request)
    form, problem = await _checked_form(request, session)
    if problem is None:
        try:
            await connect_chargebee(
                services_of(request),
                ChargebeeCredentialsSubmission(
                    account_id=session.account_id,
                    site=_text(form, "site"),
                    api_key=SecretStr(_text(form, "api_key")),
                    contact_email=_text(form, "contact_email"),
                ),
            )
        except ConnectionRefused as refusal:
            if refusal.code is RefusalCode.ALREADY_CONNECTED:
                return _redirect(ONBOARDING_PATH)
            problem = _problem(refusal)
        else:
            request.state.outcome = "connected"
            return _redirect(ONBOARDING_PATH)
    return await _form_again(
        request,
        session,
        "chargebee.html",
        problem,
        email=_text(form, "contact_email"),
        site=_text(form, "site"),
    )


def _skip_context(session: OnboardingSession, current: OnboardingStatus) -> dict[str, Any]:
    return {"unavailable": _unavailable(SKIP_DISABLED_FEATURES), **_page_context(session, current)}


def _unavailable(features: Sequence[Feature]) -> list[tuple[str, str]]:
    return [FEATURE_DESCRIPTIONS[feature] for feature in features]


@router.get("/skip")
async def skip_confirmation(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _no_session(request)
    current = await _status(request, session)
    if current.stage is not OnboardingStage.CHOOSE:
        return _redirect(ONBOARDING_PATH)
    return _render(request, "skip.html", **_skip_context(session, current))


@router.post("/skip")
async def skip_submit(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _no_session(request)
    form = await request.form()
    if not session.accepts(_text(form, CSRF_FIELD)):
        request.state.outcome = "csrf"
        current = await _status(request, session)
        return _render(
            request,
            "skip.html",
            status_code=403,
            problem=FormProblem(_CSRF_MESSAGE, code="csrf", status_code=403),
            **_skip_context(session, current),
        )
    try:
        await skip_connection(
            services_of(request),
            SkipRequest(account_id=session.account_id, contact_email=session.contact_email),
        )
    except ConnectionRefused as refusal:
        if refusal.code is not RefusalCode.ALREADY_CONNECTED:
            raise
    request.state.outcome = "skipped"
    return _redirect(ONBOARDING_PATH)


@router.post("/import")
async def import_again(request: Request) -> Response:
    """After a failed import: try once more with the same connection."""
    session = _session(request)
    if session is None:
        return _no_session(request)
    form = await request.form()
    if session.accepts(_text(form, CSRF_FIELD)):
        try:
            await request_import(services_of(request), session.account_id)
        except ConnectionRefused as refusal:
            if refusal.code not in (
                RefusalCode.NOT_CONNECTED,
                RefusalCode.CONNECTION_NOT_FOUND,
                RefusalCode.IMPORT_IN_PROGRESS,
            ):
                raise
        request.state.outcome = "import_requested"
    else:
        request.state.outcome = "csrf"
    return _redirect(ONBOARDING_PATH)
