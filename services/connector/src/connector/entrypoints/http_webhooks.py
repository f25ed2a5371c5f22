"""Processor webhook routes (SPEC "HTTP API"): raw body in, verified, queued; answered at once.

A body longer than ``HTTP_MAX_BODY_BYTES`` never gets here: the HTTP kit answers 413 as it streams in.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse

from connector.entrypoints.http_dependencies import DependenciesDep
from connector.entrypoints.http_models import ErrorBody, ErrorDetail
from connector.service.take_webhooks import WebhookRefused, take_chargebee_webhook, take_stripe_webhook

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

_ACCEPTED: Final = {"received": True}

_REFUSALS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": ErrorBody, "description": "invalid_signature (nothing changes) or invalid_request"},
    401: {"model": ErrorBody, "description": "unauthorized: wrong webhook credentials (nothing changes)"},
    503: {"model": ErrorBody, "description": "the event could not be queued; the processor retries"},
}


def _refusal(error: WebhookRefused) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="webhooks"'} if error.status == 401 else None
    body = ErrorBody(error=ErrorDetail(code=error.code, message=error.message))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=error.status, headers=headers)


@router.post(
    "/stripe",
    summary="Stripe Connect webhooks: verified with Stripe-Signature, queued for the importer",
    responses=_REFUSALS,
)
async def post_stripe_webhook(
    request: Request,
    deps: DependenciesDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> JSONResponse:
    try:
        await take_stripe_webhook(deps, await request.body(), stripe_signature)
    except WebhookRefused as error:
        return _refusal(error)
    return JSONResponse(_ACCEPTED)


@router.post(
    "/chargebee/{connection_id}",
    summary="Chargebee webhooks of one connection: HTTP Basic with the credentials shown at connect",
    responses=_REFUSALS,
)
async def post_chargebee_webhook(
    request: Request,
    deps: DependenciesDep,
    connection_id: Annotated[str, Path(min_length=1, max_length=128)],
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    try:
        username, password = _basic_credentials(authorization)
        await take_chargebee_webhook(deps, connection_id, username, password, await request.body())
    except WebhookRefused as error:
        return _refusal(error)
    return JSONResponse(_ACCEPTED)


def _basic_credentials(authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookRefused(401, "unauthorized", "This endpoint needs the connection's Basic credentials.")
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise WebhookRefused(401, "unauthorized", "The Basic credentials are malformed.") from error
    if not sep:
        raise WebhookRefused(401, "unauthorized", "The Basic credentials are malformed.")
    return username, password
