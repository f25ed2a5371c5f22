"""Stripe's error body, `{"error": {"type", "code", "message", "param"}}`, and key masking."""

from __future__ import annotations

import re
from typing import Any

DOC_URL = "https://stripe.com/docs/error-codes/"
RATE_LIMIT_MESSAGE = (
    "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
)


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL + self.code.replace("_", "-")
        error["message"] = self.message
        if self.param:
            error["param"] = self.param
        error["type"] = self.type
        return {"error": error}


def mask_key(key: str) -> str:
    """`sk_test_****…abcd`: the prefix and the last four characters, never the whole key."""
    match = re.match(r"^([a-z]{2}_(?:test_|live_)?)", key)
    prefix = match.group(1) if match else ""
    tail = key[-4:] if len(key) >= len(prefix) + 12 else ""
    return f"{prefix}{'*' * 28}{tail}"


def injected_error(status: int, message: str | None) -> dict[str, Any]:
    """The body Stripe would send with this status (for fault injection)."""
    defaults: dict[int, tuple[str, str | None, str]] = {
        400: ("invalid_request_error", None, "Invalid request (injected by the sandbox)."),
        401: ("invalid_request_error", None, "Invalid API Key provided: sk_test_****"),
        402: ("card_error", "card_declined", "Your card was declined."),
        403: (
            "invalid_request_error",
            None,
            "The provided key does not have the required permissions for this endpoint.",
        ),
        404: ("invalid_request_error", "resource_missing", "No such object (injected by the sandbox)."),
        409: ("idempotency_error", None, "There is currently another in-progress request."),
        429: ("invalid_request_error", "rate_limit", RATE_LIMIT_MESSAGE),
    }
    type_, code, text = defaults.get(
        status, ("api_error", None, "An unknown error occurred (injected by the sandbox).")
    )
    return StripeError(status, message or text, type_=type_, code=code).body()
