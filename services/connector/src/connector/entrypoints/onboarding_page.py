"""The onboarding page: a server-rendered walk through connecting Stripe or Chargebee, or skipping.

A reference for the gateway team and a way for a newcomer to try the product. Every form posts to
the same use cases as the HTTP API and the Kafka intake; the account comes only from the signed link
(see :mod:`connector.entrypoints.onboarding_session`), never from a form. Forms work without
JavaScript; ``static/onboarding.js`` only refreshes the import's progress in place.

Here: the home page (the link, the stage), its progress section and "import again". The connect
forms are in ``onboarding_forms``, skipping in ``onboarding_skip``, the offers demo in
``onboarding_offers``, the page's frame (templates, headers, session) in ``onboarding_rendering``
and its words in ``onboarding_wording``.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.staticfiles import StaticFiles

from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints import onboarding_forms, onboarding_offers, onboarding_skip
from connector.entrypoints.http_dependencies import dependencies_of
from connector.entrypoints.onboarding_forms import form_text
from connector.entrypoints.onboarding_rendering import (
    CSRF_FIELD,
    STATIC_DIR,
    STATIC_PATH,
    NoSession,
    OnboardingPageConfig,
    Session,
    no_session,
    page_config,
    page_context,
    redirect,
    render,
    session_of,
    status_of,
)
from connector.entrypoints.onboarding_session import (
    ONBOARDING_PATH,
    SESSION_COOKIE,
    InvalidLink,
    OnboardingSession,
    OnboardingSessions,
    OpenedLink,
)
from connector.entrypoints.onboarding_wording import (
    STRIPE_DENIED_MESSAGE,
    STRIPE_ERROR_MESSAGE,
    STRIPE_RETURN_MESSAGES,
)
from connector.service.onboarding_status import OnboardingStage
from connector.service.request_import import request_import
from connector.settings import ConnectorSettings

#: How often the page reloads itself while an import runs, when JavaScript is off.
NO_SCRIPT_REFRESH_S: Final = 3

router = APIRouter(prefix=ONBOARDING_PATH, include_in_schema=False)


def install_onboarding_page(app: FastAPI, settings: ConnectorSettings) -> None:
    """Serve the page under ``/onboarding`` (routes, templates' static files) on ``app``."""
    app.state.onboarding = OnboardingPageConfig(
        sessions=OnboardingSessions(settings.api_jwt_secret),
        return_url=f"{settings.public_base_url}{ONBOARDING_PATH}",
        secure_cookies=settings.public_base_url.startswith("https://"),
    )
    app.add_exception_handler(NoSession, _on_no_session)
    app.include_router(router)
    app.include_router(onboarding_forms.router)
    app.include_router(onboarding_skip.router)
    app.include_router(onboarding_offers.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="onboarding-static")


async def _on_no_session(request: Request, exc: Exception) -> Response:
    return no_session(request)


def _stripe_return_notice(stage: OnboardingStage, status: str | None, code: str | None) -> str | None:
    """What to say after Stripe sent the person back, when nothing got connected."""
    if stage not in (OnboardingStage.CHOOSE, OnboardingStage.RECONNECT) or status not in ("denied", "error"):
        return None
    if status == "denied":
        return STRIPE_DENIED_MESSAGE
    return STRIPE_RETURN_MESSAGES.get(code or "", STRIPE_ERROR_MESSAGE)


CallbackParam = Annotated[str | None, Query(max_length=64)]
LinkParam = Annotated[str | None, Query(max_length=4096)]


@router.get("", name="onboarding_home")
async def onboarding_home(
    request: Request, token: LinkParam = None, status: CallbackParam = None, code: CallbackParam = None
) -> Response:
    if token is not None:
        return await _follow_link(request, token)
    session = session_of(request)
    if session is None:
        return no_session(request)
    current = await status_of(request, session)
    context = page_context(session, current)
    match current.stage:
        case OnboardingStage.CHOOSE:
            return render(
                request, "choose.html", notice=_stripe_return_notice(current.stage, status, code), **context
            )
        case OnboardingStage.SKIPPED:
            return render(request, "skipped.html", **context)
        case OnboardingStage.RECONNECT:
            return render(
                request,
                "reconnect.html",
                notice=_stripe_return_notice(current.stage, status, code),
                email=session.contact_email or current.contact_email or "",
                site=current.site or "",
                problem=None,
                **context,
            )
        case _:
            return render(
                request,
                "progress.html",
                just_connected=status == "connected",
                refresh_s=None if current.stage.finished else NO_SCRIPT_REFRESH_S,
                **context,
            )


async def _follow_link(request: Request, token: str) -> Response:
    """A link opens a session once; it never silently replaces the session of another account."""
    config = page_config(request)
    try:
        link = config.sessions.open(token)
    except InvalidLink:
        request.state.outcome = "invalid_link"
        return render(request, "expired.html", status_code=401, invalid_link=True)
    current = session_of(request)
    if current is not None and current.account_id != link.session.account_id:
        # Someone else's link (sent by an attacker, say) must not quietly make this browser act for
        # their account: the person sees both accounts and chooses, on a form only this session can send.
        request.state.outcome = "other_account"
        return render(
            request, "switch.html", session=current, other_account=link.session.account_id, token=token
        )
    return await _enter(request, link, current)


async def _enter(request: Request, link: OpenedLink, current: OnboardingSession | None) -> Response:
    config = page_config(request)
    request.state.account_id = link.session.account_id
    if not await dependencies_of(request).onboarding_links.claim(link.link_id, link.expires_at):
        if current is not None and current.account_id == link.session.account_id:
            return redirect(ONBOARDING_PATH)  # followed again from the same browser: carry on
        request.state.outcome = "used_link"
        return render(request, "expired.html", status_code=410, used_link=True)
    # The token leaves the address bar (and the history) at once; the cookie carries the session.
    response = redirect(ONBOARDING_PATH)
    response.set_cookie(
        SESSION_COOKIE,
        config.sessions.cookie_value(link.session),
        max_age=config.sessions.session_ttl_s,
        path=ONBOARDING_PATH,
        secure=config.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


@router.post("/switch")
async def switch_account(request: Request, current: Session) -> Response:
    """The person chose to leave their session for the account of a link they followed."""
    form = await request.form()
    if not current.accepts(form_text(form, CSRF_FIELD)):
        request.state.outcome = "csrf"
        return redirect(ONBOARDING_PATH)
    try:
        link = page_config(request).sessions.open(form_text(form, "token"))
    except InvalidLink:
        request.state.outcome = "invalid_link"
        return render(request, "expired.html", status_code=401, invalid_link=True)
    return await _enter(request, link, current)


@router.get("/progress")
async def onboarding_progress(request: Request, session: Session) -> Response:
    """The progress section alone, which the script swaps in while an import runs."""
    current = await status_of(request, session)
    return render(request, "_progress.html", **page_context(session, current))


@router.post("/import")
async def import_again(request: Request, session: Session) -> Response:
    """After a failed import: try once more with the same connection."""
    form = await request.form()
    if session.accepts(form_text(form, CSRF_FIELD)):
        try:
            await request_import(dependencies_of(request), session.account_id)
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
    return redirect(ONBOARDING_PATH)
