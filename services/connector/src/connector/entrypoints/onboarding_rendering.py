"""The onboarding page's frame: templates, security headers, the session from the cookie, redirects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from connector.entrypoints.http_dependencies import dependencies_of
from connector.entrypoints.onboarding_session import (
    ONBOARDING_PATH,
    SESSION_COOKIE,
    OnboardingSession,
    OnboardingSessions,
)
from connector.entrypoints.onboarding_wording import (
    FEATURE_DESCRIPTIONS,
    PROCESSOR_NAMES,
    ordered_resources,
    resource_label,
)
from connector.service.onboarding_status import OnboardingStatus, onboarding_status

_PACKAGE_DIR: Final = Path(__file__).resolve().parent.parent
TEMPLATES_DIR: Final = _PACKAGE_DIR / "templates" / "onboarding"
STATIC_DIR: Final = _PACKAGE_DIR / "static"
STATIC_PATH: Final = f"{ONBOARDING_PATH}/static"

#: How often the script asks for progress while an import runs.
POLL_INTERVAL_MS: Final = 1500

CSRF_FIELD: Final = "csrf_token"

PAGE_HEADERS: Final = {
    # The link's token must not leak through a Referer, a cache or a frame.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class OnboardingPageConfig:
    sessions: OnboardingSessions
    #: Where Stripe's callback sends the browser back: this page, on the public base URL.
    return_url: str
    secure_cookies: bool


_templates = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
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


def page_config(request: Request) -> OnboardingPageConfig:
    config: OnboardingPageConfig = request.app.state.onboarding
    return config


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    all_headers = {**PAGE_HEADERS, "Content-Security-Policy": _policy(request), **(headers or {})}
    return HTMLResponse(html, status_code=status_code, headers=all_headers)


def _policy(request: Request) -> str:
    # The Stripe form's answer is a redirect to Stripe's authorize page, which form-action must allow.
    connect_base = dependencies_of(request).stripe_platform.connect_base
    return (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
        f"form-action 'self' {connect_base}; frame-ancestors 'none'; base-uri 'none'"
    )


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=PAGE_HEADERS)


def session_of(request: Request) -> OnboardingSession | None:
    session = page_config(request).sessions.from_cookie(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        request.state.account_id = session.account_id
    return session


def no_session(request: Request) -> HTMLResponse:
    request.state.outcome = "no_session"
    return render(request, "expired.html", status_code=401)


class NoSession(Exception):
    """The request has no valid session cookie: the page answers with :func:`no_session`."""


async def _required_session(request: Request) -> OnboardingSession:
    session = session_of(request)
    if session is None:
        raise NoSession
    return session


#: A route's session, from its cookie; a request without one is answered by :func:`no_session`.
Session = Annotated[OnboardingSession, Depends(_required_session)]


async def status_of(request: Request, session: OnboardingSession) -> OnboardingStatus:
    return await onboarding_status(dependencies_of(request), session.account_id)


def page_context(session: OnboardingSession, status: OnboardingStatus) -> dict[str, Any]:
    return {"session": session, "status": status, "stage": status.stage.value}
