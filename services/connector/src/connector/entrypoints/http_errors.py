"""A use case's refusal as an HTTP answer in the error envelope, with its status and ``Retry-After``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from contracts.runtime.http_errors import documented_errors, error_response
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_models import ErrorBody

STATUS_OF: Final[Mapping[RefusalCode, int]] = {
    RefusalCode.INVALID_REQUEST: 422,
    RefusalCode.INVALID_KEY_FORMAT: 422,
    RefusalCode.PUBLISHABLE_KEY: 422,
    RefusalCode.KEY_REJECTED: 422,
    RefusalCode.INSUFFICIENT_PERMISSIONS: 422,
    RefusalCode.INVALID_SITE: 422,
    RefusalCode.SITE_NOT_FOUND: 422,
    RefusalCode.SITE_BLOCKED: 422,
    RefusalCode.INVALID_STATE: 400,
    RefusalCode.ACCOUNT_MISMATCH: 422,
    RefusalCode.AUTHORIZATION_DENIED: 422,
    RefusalCode.AUTHORIZATION_FAILED: 422,
    RefusalCode.PLAINTEXT_SECRET: 422,
    RefusalCode.SEALED_SECRET_INVALID: 422,
    RefusalCode.PROCESSOR_UNAVAILABLE: 503,
    RefusalCode.STRIPE_CONNECT_UNAVAILABLE: 503,
    RefusalCode.RATE_LIMITED: 429,
    RefusalCode.ALREADY_CONNECTED: 409,
    RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT: 409,
    RefusalCode.NOT_CONNECTED: 409,
    RefusalCode.IMPORT_IN_PROGRESS: 409,
    RefusalCode.INVALID_RETURN_URL: 422,
    RefusalCode.CONNECTION_NOT_FOUND: 404,
    RefusalCode.IDEMPOTENCY_KEY_REQUIRED: 400,
    RefusalCode.IDEMPOTENCY_CONFLICT: 409,
    RefusalCode.FEATURE_UNAVAILABLE: 409,
    RefusalCode.SUBSCRIPTION_NOT_FOUND: 404,
    RefusalCode.COUPON_NOT_FOUND: 404,
    RefusalCode.OFFER_NOT_APPLICABLE: 422,
}

_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "invalid_state: the OAuth state is unknown, used or expired; idempotency_key_required",
    401: "unauthorized: missing or invalid bearer token",
    403: "forbidden: the token belongs to another account",
    404: "connection_not_found: the account never connected or skipped; subscription_not_found, "
    "coupon_not_found",
    409: "already_connected, different_processor_account (a reconnect reaching another processor "
    "account), not_connected, import_in_progress, feature_unavailable or idempotency_conflict",
    422: "invalid_request and the credential codes: invalid_key_format, publishable_key, key_rejected, "
    "insufficient_permissions, invalid_site, site_not_found, site_blocked, invalid_return_url, "
    "offer_not_applicable",
    429: "rate_limited: the processor throttles this account; see Retry-After",
    503: "processor_unavailable (see Retry-After when known) or stripe_connect_unavailable",
}
_RETRY_AFTER_HEADER: Final = {
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status with the error body (for the OpenAPI document)."""
    return documented_errors(
        {status: _DESCRIPTIONS.get(status, "error") for status in statuses},
        model=ErrorBody,
        headers={429: _RETRY_AFTER_HEADER, 503: _RETRY_AFTER_HEADER},
    )


def refusal_response(request: Request, refusal: ConnectionRefused) -> JSONResponse:
    headers = {} if refusal.retry_after_s is None else {"Retry-After": str(refusal.retry_after_s)}
    missing = list(refusal.missing_permissions)
    return error_response(
        request,
        STATUS_OF.get(refusal.code, 422),
        refusal.code.value,
        refusal.message,
        headers=headers,
        details={"missing_permissions": missing} if missing else None,
    )


def install_refusal_handler(app: FastAPI) -> None:
    async def on_refusal(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConnectionRefused)
        return refusal_response(request, exc)

    app.add_exception_handler(ConnectionRefused, on_refusal)
