"""Processor webhook routes (SPEC "HTTP API"): raw body in, verified, queued; answered at once.

Webhooks are the connector's hot path (a processor may send thousands a second), so each route is
served by a plain ASGI app (:data:`PLAIN_ROUTES`, :mod:`contracts.runtime.http_plain`) matched ahead
of FastAPI's routing and request handling, which cost several times the webhook's own work. The
server span, the access log line, the request-duration histogram, the body limit (a body longer
than ``HTTP_MAX_BODY_BYTES`` is refused with 413 as it streams in) and the error envelope apply to
them as to every route. :data:`router` documents them in the OpenAPI; the plain routes shadow it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Final, NoReturn

from contracts.runtime.http_plain import (
    PlainRoute,
    error_body,
    header,
    mark_outcome,
    read_body,
    render_json,
    send_json,
)
from fastapi import APIRouter, Header, Path
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from connector.entrypoints.http_dependencies import dependencies_in
from connector.entrypoints.http_models import ErrorBody
from connector.service.take_webhooks import WebhookRefused, take_chargebee_webhook, take_stripe_webhook

STRIPE_PATH: Final = "/v1/webhooks/stripe"
CHARGEBEE_PATH: Final = "/v1/webhooks/chargebee/{connection_id}"
CONNECTION_ID_MAX_LENGTH: Final = 128

_ACCEPTED: Final = render_json({"received": True})
_BASIC_CHALLENGE: Final = ((b"www-authenticate", b'Basic realm="webhooks"'),)

_REFUSALS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": ErrorBody, "description": "invalid_signature (nothing changes) or invalid_request"},
    401: {"model": ErrorBody, "description": "unauthorized: wrong webhook credentials (nothing changes)"},
    503: {"model": ErrorBody, "description": "the event could not be queued; the processor retries"},
}


async def _refuse(scope: Scope, send: Send, error: WebhookRefused) -> None:
    mark_outcome(scope, error.code)
    headers = _BASIC_CHALLENGE if error.status == 401 else ()
    await send_json(send, error.status, error_body(error.code, error.message), headers)


async def serve_stripe_webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/webhooks/stripe``: verified with ``Stripe-Signature``, queued; 200 when taken."""
    deps = dependencies_in(scope)
    signature = header(scope, b"stripe-signature")
    try:
        await take_stripe_webhook(deps, await read_body(receive), signature)
    except WebhookRefused as error:
        await _refuse(scope, send, error)
        return
    await send_json(send, 200, _ACCEPTED)


async def serve_chargebee_webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/webhooks/chargebee/{connection_id}``: the connection's Basic credentials, queued."""
    connection_id: str = scope["path_params"]["connection_id"]
    if len(connection_id) > CONNECTION_ID_MAX_LENGTH:
        _connection_id_too_long()
    deps = dependencies_in(scope)
    try:
        username, password = _basic_credentials(header(scope, b"authorization"))
        await take_chargebee_webhook(deps, connection_id, username, password, await read_body(receive))
    except WebhookRefused as error:
        await _refuse(scope, send, error)
        return
    await send_json(send, 200, _ACCEPTED)


PLAIN_ROUTES: Final = (
    PlainRoute(STRIPE_PATH, serve_stripe_webhook, methods=["POST"]),
    PlainRoute(CHARGEBEE_PATH, serve_chargebee_webhook, methods=["POST"]),
)


def _connection_id_too_long() -> NoReturn:
    # The refusal FastAPI's validation of the documented path parameter gives (422 invalid_request).
    raise RequestValidationError(
        [
            {
                "type": "string_too_long",
                "loc": ("path", "connection_id"),
                "msg": f"String should have at most {CONNECTION_ID_MAX_LENGTH} characters",
                "ctx": {"max_length": CONNECTION_ID_MAX_LENGTH},
            }
        ]
    )


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


# --- the OpenAPI description of the two routes, served by PLAIN_ROUTES ------------------------------

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _served_by_the_plain_route() -> NoReturn:
    raise RuntimeError("the webhook routes are served by connector.entrypoints.http_webhooks.PLAIN_ROUTES")


@router.post(
    "/stripe",
    summary="Stripe Connect webhooks: verified with Stripe-Signature, queued for the importer",
    responses=_REFUSALS,
)
async def post_stripe_webhook(
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> JSONResponse:
    _served_by_the_plain_route()


@router.post(
    "/chargebee/{connection_id}",
    summary="Chargebee webhooks of one connection: HTTP Basic with the credentials shown at connect",
    responses=_REFUSALS,
)
async def post_chargebee_webhook(
    connection_id: Annotated[str, Path(min_length=1, max_length=CONNECTION_ID_MAX_LENGTH)],
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    _served_by_the_plain_route()
