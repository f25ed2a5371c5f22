"""Every HTTP failure as the SPEC's ``{"error": {"code", "message"}}``, with its status and headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

UNAUTHORIZED: Final = "unauthorized"
FORBIDDEN: Final = "forbidden"
INVALID_REQUEST: Final = "invalid_request"
INTERNAL_ERROR: Final = "internal_error"
VALIDATION_MESSAGE_LIMIT: Final = 5
_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CODE_OF_STATUS: Final[Mapping[int, str]] = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The SPEC's error envelope, as the OpenAPI documents show it."""

    error: ErrorDetail


def documented_errors(
    descriptions: Mapping[int, str],
    *,
    model: type[BaseModel] = ErrorBody,
    headers: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route or router: each status with the error envelope and its meaning."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status, description in descriptions.items():
        response: dict[str, Any] = {"model": model, "description": description}
        if headers and status in headers:
            response["headers"] = dict(headers[status])
        responses[status] = response
    return responses


class ApiError(Exception):
    """A refusal of the HTTP layer (authentication, a query that cannot be answered)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The error envelope; ``details`` adds fields beside ``code`` and ``message``."""
    request.state.outcome = code
    body = {"error": {"code": code, "message": message, **(details or {})}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _validation_message(error: RequestValidationError) -> str:
    # Only where and what: pydantic's ``input`` may be the very secret that failed validation.
    parts = []
    for item in error.errors()[:VALIDATION_MESSAGE_LIMIT]:
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        parts.append(f"{location}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "The request is not valid."


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette names none for included routers)."""
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.message, headers=exc.headers)


async def _on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, 422, INVALID_REQUEST, _validation_message(exc))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot even decode: a request that fails validation.
        return error_response(request, 422, INVALID_REQUEST, "The body is not valid JSON.")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    code = _CODE_OF_STATUS.get(exc.status_code, "http_error")
    return error_response(request, exc.status_code, code, str(exc.detail), headers=headers)


async def _on_unexpected(request: Request, _exc: Exception) -> JSONResponse:
    return error_response(request, 500, INTERNAL_ERROR, "Something went wrong on our side; please try again.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
