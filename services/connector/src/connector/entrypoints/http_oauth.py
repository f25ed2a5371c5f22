"""The Stripe OAuth callback, reached by the person's browser (not by an API client)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment

from connector.domain.oauth import with_query
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_dependencies import DependenciesDep
from connector.entrypoints.http_errors import error_responses, refusal_response
from connector.service.authorize_stripe import (
    AuthorizationOutcome,
    AuthorizationResult,
    StripeCallback,
    complete_stripe_authorization,
)

router = APIRouter(tags=["oauth"])

#: The query string carries a one-time code and state: keep them out of caches and Referer headers.
PRIVATE_PAGE_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

_PAGE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; line-height: 1.5">
<h1>{{ title }}</h1><p>{{ message }}</p>{% if code %}<p><small>Code: {{ code }}</small></p>{% endif %}
</body></html>
"""
)

_TITLES: Final = {
    AuthorizationResult.CONNECTED: "Stripe is connected",
    AuthorizationResult.DENIED: "Stripe was not connected",
    AuthorizationResult.ERROR: "Stripe could not be connected",
}

CallbackParam = Annotated[str | None, Query(max_length=2048)]


def _page(title: str, message: str, status: int, code: str | None = None) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.render(title=title, message=message, code=code),
        status_code=status,
        headers=PRIVATE_PAGE_HEADERS,
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _answer(outcome: AuthorizationOutcome) -> Response:
    if outcome.return_url is not None:
        params = {"status": outcome.result.value}
        if outcome.result is AuthorizationResult.ERROR and outcome.code is not None:
            params["code"] = outcome.code.value
        return RedirectResponse(
            with_query(outcome.return_url, **params), status_code=303, headers=PRIVATE_PAGE_HEADERS
        )
    message = (
        outcome.message
        or "Your billing history is being imported; we will email you when it is done. "
        "You can close this window."
    )
    return _page(_TITLES[outcome.result], message, 200, None if outcome.code is None else outcome.code.value)


@router.get(
    "/v1/oauth/stripe/callback",
    summary="Where Stripe sends the browser back after the person authorized (or denied) our platform",
    response_class=Response,
    responses={
        303: {"description": "Redirect to the return_url with ?status=connected|denied|error&code=…"},
        200: {
            "description": "A page saying how it went, when no return_url was given",
            "content": {"text/html": {}},
        },
        **error_responses(400, 422),
    },
)
async def stripe_oauth_callback(
    *,
    request: Request,
    deps: DependenciesDep,
    state: CallbackParam = None,
    code: CallbackParam = None,
    error: CallbackParam = None,
    error_description: CallbackParam = None,
) -> Response:
    del error_description  # Stripe's own words are not shown; the outcome code says enough.
    try:
        outcome = await complete_stripe_authorization(
            deps, StripeCallback(state=state, code=code, error=error)
        )
    except ConnectionRefused as refusal:
        request.state.outcome = refusal.code.value
        if _wants_html(request) and refusal.code is RefusalCode.INVALID_STATE:
            return _page("This link no longer works", refusal.message, 400, refusal.code.value)
        return refusal_response(request, refusal)
    request.state.account_id = outcome.account_id
    request.state.outcome = outcome.result.value if outcome.code is None else outcome.code.value
    return _answer(outcome)
