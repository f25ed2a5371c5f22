"""Small standard-library clients for tests: click through the OAuth consent, drive `/_sandbox/`.

No third-party HTTP client, so any test (or another process) can use them.
"""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal

TIMEOUT_S = 30.0
_HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class SandboxHTTPError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def _send(
    method: str, url: str, body: bytes | None = None, content_type: str | None = None
) -> tuple[int, dict[str, str], str]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - checked above
    try:
        with _opener.open(request, timeout=TIMEOUT_S) as response:
            return response.status, dict(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


def authorize_without_browser(
    authorize_url: str,
    *,
    decision: Literal["authorize", "deny"] = "authorize",
    account: str | None = None,
) -> str:
    """Open the fake Stripe's consent page and press a button; returns the redirect `Location`.

    `authorize_url` is what the connector built (`{STRIPE_CONNECT_BASE}/oauth/authorize?...`).
    `account` picks one of the fake's accounts (default: the preselected primary account).
    """
    status, _, page = _send("GET", authorize_url)
    if status != 200:
        raise SandboxHTTPError(status, page)
    fields = {name: html.unescape(value) for name, value in _HIDDEN_INPUT.findall(page)}
    if account is None:
        checked = re.search(r'name="account" value="([^"]+)" checked', page)
        account = html.unescape(checked.group(1)) if checked else ""
    fields.update(account=account, decision=decision)
    parts = urllib.parse.urlsplit(authorize_url)
    action = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/oauth/authorize", "", ""))
    form = urllib.parse.urlencode(fields).encode()
    status, headers, body = _send("POST", action, form, "application/x-www-form-urlencoded")
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    if status != 302 or location is None:
        raise SandboxHTTPError(status, body)
    return location


class SandboxAdmin:
    """Client of a fake's `/_sandbox/` control API (works across processes)."""

    def __init__(self, base_url: str, *, admin_path: str = "/_sandbox") -> None:
        """`admin_path` is `/_sandbox/chargebee` for the fake Chargebee when both share one port."""
        self.base_url = base_url.rstrip("/")
        self.admin_path = "/" + admin_path.strip("/")

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        status, _, text = _send(method, f"{self.base_url}{self.admin_path}{path}", body, "application/json")
        if status >= 400:
            raise SandboxHTTPError(status, text)
        return json.loads(text) if text else None

    def add_fault(
        self,
        path_prefix: str,
        *,
        status: int | None = None,
        count: int = 1,
        delay_s: float = 0.0,
        close_connection: bool = False,
        retry_after_s: int | None = None,
        should_retry: bool | None = None,
        method: str | None = None,
        message: str | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The next `count` matching requests get `status` (or a delay, or a dropped connection)."""
        spec = {
            "path_prefix": path_prefix,
            "status": status,
            "count": count,
            "delay_s": delay_s,
            "close_connection": close_connection,
            "retry_after_s": retry_after_s,
            "should_retry": should_retry,
            "method": method,
            "message": message,
            "body": body,
            "headers": headers or {},
        }
        result: dict[str, Any] = self._call("POST", "/faults", spec)
        return result

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset_stats(self) -> None:
        self._call("DELETE", "/stats")

    def delete(
        self, resource: str, ids: list[str], *, account: str | None = None, site: str | None = None
    ) -> dict[str, Any]:
        payload = {"resource": resource, "ids": ids, "account": account, "site": site}
        result: dict[str, Any] = self._call("POST", "/delete", payload)
        return result

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/settings")
        return result

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", "/settings", changes)
        return result

    def reset(self) -> None:
        """Clear faults and stats, restore deleted objects and the initial settings."""
        self._call("POST", "/reset")
