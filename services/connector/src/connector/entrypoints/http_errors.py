"""Every HTTP failure as ``{"error": {"code", "message"}}``, with its status and ``Retry-After``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_models import ErrorBody, ErrorDetail

UNAUTHORIZED: Final = "unauthorized"
FORBIDDEN: Final = "forbidden"
INTERNAL_ERROR: Final = "internal_error"
VALIDATION_MESSAGE_LIMIT: Final = 5

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
    RefusalCode.NOT_CONNECTED: 409,
    RefusalCode.IMPORT_IN_PROGRESS: 409,
    RefusalCode.INVALID_RETURN_URL: 422,
    RefusalCode.CONNECTION_NOT_FOUND: 404,
}

_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "invalid_state: the OAuth state is unknown, used or expired",
    401: "unauthorized: missing or invalid bearer token",
    403: "forbidden: the token belongs to another account",
    404: "connection_not_found: the account never connected or skipped",
    409: "already_connected, not_connected or import_in_progress",
    422: "invalid_request and the credential codes: invalid_key_format, publishable_key, key_rejected, "
    "insufficient_permissions, invalid_site, site_not_found, site_blocked, invalid_return_url",
    429: "rate_limited: the processor throttles this account; see Retry-After",
    503: "processor_unavailable (see Retry-After when known) or stripe_connect_unavailable",
}
_RETRY_AFTER_HEADER: Final = {
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
}


class ApiError(Exception):
    """A failure of the HTTP layer itself (authentication), outside any use case."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status with the error body (for the OpenAPI document)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "error")}
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER_HEADER
        responses[status] = response
    return responses


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    missing_permissions: Sequence[str] = (),
) -> JSONResponse:
    request.state.outcome = code
    detail = ErrorDetail(code=code, message=message, missing_permissions=list(missing_permissions) or None)
    return JSONResponse(
        ErrorBody(error=detail).model_dump(exclude_none=True), status_code=status, headers=dict(headers or {})
    )


def refusal_response(request: Request, refusal: ConnectionRefused) -> JSONResponse:
    headers = {} if refusal.retry_after_s is None else {"Retry-After": str(refusal.retry_after_s)}
    return error_response(
        request,
        STATUS_OF.get(refusal.code, 422),
        refusal.code.value,
        refusal.message,
        headers=headers,
        missing_permissions=refusal.missing_permissions,
    )


def _validation_message(error: RequestValidationError) -> str:
    # Only where and what: pydantic's ``input`` may be the very secret that failed validation.
    parts = []
    for item in error.errors()[:VALIDATION_MESSAGE_LIMIT]:
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        parts.append(f"{location}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "The request is not valid."


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    async def on_refusal(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConnectionRefused)
        return refusal_response(request, exc)

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status, exc.code, exc.message, headers=exc.headers)

    async def on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, 422, RefusalCode.INVALID_REQUEST.value, _validation_message(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot even decode: a request that fails validation.
            return error_response(
                request, 422, RefusalCode.INVALID_REQUEST.value, "The body is not valid JSON."
            )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail), headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(
            request, 500, INTERNAL_ERROR, "Something went wrong on our side; please try again."
        )

    app.add_exception_handler(ConnectionRefused, on_refusal)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
