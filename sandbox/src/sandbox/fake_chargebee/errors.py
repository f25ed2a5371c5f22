"""Chargebee's error body: `{"message", "type", "api_error_code", "param", "http_status_code"}`.

Like Chargebee, the body also carries the legacy `error_code` / `error_msg` / `error_param`.
"""

from __future__ import annotations

from typing import Any

RATE_LIMIT_MESSAGE = (
    "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits. "
    "Please try after some time."
)


class ChargebeeError(Exception):
    def __init__(
        self,
        status: int,
        api_error_code: str,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error_code = api_error_code
        self.message = message
        self.type = type_ or ("invalid_request" if status < 429 else "operation_failed")
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "api_error_code": self.api_error_code,
        }
        if self.param:
            body["param"] = self.param
            body["error_param"] = self.param
        body["error_code"] = self.api_error_code
        body["error_msg"] = self.message
        body["http_status_code"] = self.status
        return body


def site_not_found() -> ChargebeeError:
    return ChargebeeError(404, "site_not_found", "Sorry, we couldn't find that site")


def site_blocked() -> ChargebeeError:
    return ChargebeeError(
        403,
        "request_blocked",
        "Sorry, access to this site has been blocked. Please contact Chargebee support.",
    )


def authentication_failed() -> ChargebeeError:
    return ChargebeeError(401, "api_authentication_failed", "Sorry, authentication failed. Invalid api key")


def authorization_failed() -> ChargebeeError:
    return ChargebeeError(
        403, "api_authorization_failed", "Sorry, the api key does not have permission for this operation"
    )


def wrong_value(param: str, message: str) -> ChargebeeError:
    return ChargebeeError(400, "param_wrong_value", f"{param} : {message}", param=param)


def not_found(object_name: str, param: str = "id") -> ChargebeeError:
    return ChargebeeError(
        404, "resource_not_found", f"Sorry, we couldn't find that {object_name}", param=param
    )


def injected_error(status: int, message: str | None) -> dict[str, Any]:
    """The body Chargebee would send with this status (for fault injection)."""
    defaults: dict[int, tuple[str, str]] = {
        400: ("invalid_request", "Invalid request (injected by the sandbox)"),
        401: ("api_authentication_failed", "Sorry, authentication failed. Invalid api key"),
        402: ("payment_processing_failed", "Payment failed (injected by the sandbox)"),
        403: ("api_authorization_failed", "Sorry, the api key does not have permission for this operation"),
        404: ("resource_not_found", "Sorry, we couldn't find that resource"),
        409: ("invalid_state_for_request", "The resource is locked by another request"),
        429: ("api_request_limit_exceeded", RATE_LIMIT_MESSAGE),
        500: ("internal_error", "Sorry, something went wrong when trying to process the request."),
        502: ("internal_temporary_error", "Sorry, something went wrong. Please try again."),
        503: ("site_not_ready", "Site is not ready, try after some time."),
        504: ("internal_temporary_error", "Sorry, the request timed out. Please try again."),
    }
    code, text = defaults.get(status, ("internal_error", "Sorry, something went wrong."))
    return ChargebeeError(status, code, message or text).body()
