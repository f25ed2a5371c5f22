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

    # --- data changes while running (each records the processor's events and sends webhooks) ---
    def _scope(self, account: str | None, site: str | None) -> dict[str, Any]:
        return {"account": account, "site": site}

    def create_object(
        self,
        resource: str,
        fields: dict[str, Any] | None = None,
        *,
        like: str | None = None,
        account: str | None = None,
        site: str | None = None,
    ) -> dict[str, Any]:
        """Create an object (defaults fill what `fields` leaves out); `{object, events}`."""
        payload = {"object": fields or {}, "like": like, **self._scope(account, site)}
        result: dict[str, Any] = self._call("POST", f"/objects/{resource}", payload)
        return result

    def update_object(
        self,
        resource: str,
        object_id: str,
        changes: dict[str, Any],
        *,
        event_type: str | None = None,
        account: str | None = None,
        site: str | None = None,
    ) -> dict[str, Any]:
        """Set top-level attributes of an object; `{object, events}`."""
        payload = {"changes": changes, "event_type": event_type, **self._scope(account, site)}
        result: dict[str, Any] = self._call("PATCH", f"/objects/{resource}/{object_id}", payload)
        return result

    def delete_object(
        self, resource: str, object_id: str, *, account: str | None = None, site: str | None = None
    ) -> dict[str, Any]:
        """Delete an object as the processor does (a Stripe subscription is cancelled); `{object, events}`."""
        query = "&".join(f"{k}={v}" for k, v in self._scope(account, site).items() if v)
        result: dict[str, Any] = self._call(
            "DELETE", f"/objects/{resource}/{object_id}" + (f"?{query}" if query else "")
        )
        return result

    def touch_objects(
        self,
        resource: str,
        count: int,
        changes: dict[str, Any] | None = None,
        *,
        account: str | None = None,
        site: str | None = None,
        mark: str | None = None,
    ) -> dict[str, Any]:
        """`count` updates over existing objects, an event each: `{touched, object_ids, event_ids,
        changed_at}`; `mark` names an attribute set to each change's number."""
        payload = {"count": count, "changes": changes or {}, "mark": mark, **self._scope(account, site)}
        result: dict[str, Any] = self._call("POST", f"/objects/{resource}/touch", payload)
        return result

    def cancel_subscription(
        self,
        subscription_id: str,
        *,
        at_period_end: bool = False,
        reason: str | None = None,
        feedback: str | None = None,
        comment: str | None = None,
        account: str | None = None,
        site: str | None = None,
    ) -> dict[str, Any]:
        payload = {
            "at_period_end": at_period_end,
            "reason": reason,
            "feedback": feedback,
            "comment": comment,
            **self._scope(account, site),
        }
        result: dict[str, Any] = self._call(
            "POST", f"/objects/subscriptions/{subscription_id}/cancel", payload
        )
        return result

    def reactivate_subscription(
        self, subscription_id: str, *, account: str | None = None, site: str | None = None
    ) -> dict[str, Any]:
        """Chargebee: revive a cancelled one or drop a scheduled cancellation; Stripe: the latter only."""
        result: dict[str, Any] = self._call(
            "POST", f"/objects/subscriptions/{subscription_id}/reactivate", self._scope(account, site)
        )
        return result

    def pay_invoice(
        self,
        invoice_id: str,
        *,
        failed_attempts: int = 0,
        succeed: bool = True,
        account: str | None = None,
        site: str | None = None,
    ) -> dict[str, Any]:
        """`failed_attempts` failed payments, then (unless `succeed=False`) a successful one."""
        payload = {"failed_attempts": failed_attempts, "succeed": succeed, **self._scope(account, site)}
        result: dict[str, Any] = self._call("POST", f"/objects/invoices/{invoice_id}/pay", payload)
        return result

    def advance_clock(self, seconds: float) -> dict[str, float]:
        """Move the fake's event clock (what new events and the 30-day cut-off use)."""
        result: dict[str, float] = self._call("POST", "/clock", {"advance_s": seconds})
        return result

    def reset_clock(self) -> dict[str, float]:
        result: dict[str, float] = self._call("POST", "/clock", {"reset": True})
        return result

    def deauthorize(self, account: str, *, revoke_keys: bool = False) -> dict[str, Any]:
        """Stripe: the account removes the platform's app; its OAuth tokens (and keys if asked) get 401."""
        result: dict[str, Any] = self._call(
            "POST", "/deauthorize", {"account": account, "revoke_keys": revoke_keys}
        )
        return result

    def roll_key(self, *, site: str | None = None, key: str | None = None) -> dict[str, Any]:
        """A new API key replaces `key`; the old one answers 401. Chargebee: default the site's first
        full-access key. Stripe (no `site`): default the primary account's first secret key."""
        result: dict[str, Any] = self._call("POST", "/keys/roll", {"site": site, "key": key})
        return result

    def delete_key(self, *, site: str | None = None, key: str | None = None) -> dict[str, Any]:
        """Chargebee: the site's admin deletes `key` (default the first full-access key); it answers
        401 from now on and nothing replaces it."""
        result: dict[str, Any] = self._call("POST", "/keys/delete", {"site": site, "key": key})
        return result

    # --- webhooks --------------------------------------------------------------------------------
    def add_webhook(self, url: str, **options: Any) -> dict[str, Any]:
        """Register an endpoint: Stripe `secret=` (whsec_…), `old_secret=`; Chargebee `username=`,
        `password=`; `scopes=` (accounts / sites); misbehaviour options such as `drop_next=`,
        `drop_ratio=`, `repeat_next=`, `hold_next=`, `delay_s=` (see `sandbox.webhooks`)."""
        result: dict[str, Any] = self._call("POST", "/webhooks", {"url": url, **options})
        return result

    def configure_webhook(self, endpoint_id: str, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", f"/webhooks/{endpoint_id}", changes)
        return result

    def webhook(self, endpoint_id: str, *, deliveries: bool = False) -> dict[str, Any]:
        """The endpoint with its counters (and its last deliveries: event, attempt, outcome)."""
        suffix = "?deliveries=true" if deliveries else ""
        result: dict[str, Any] = self._call("GET", f"/webhooks/{endpoint_id}{suffix}")
        return result

    def webhooks(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/webhooks")
        return result

    def release_webhooks(self, endpoint_id: str) -> int:
        """Send the deliveries held back by `hold_next` now, newest first."""
        return int(self._call("POST", f"/webhooks/{endpoint_id}/release")["released"])

    def drain_webhook(self, endpoint_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """Wait until nothing is queued or in flight for the endpoint (retries included)."""
        result: dict[str, Any] = self._call("POST", f"/webhooks/{endpoint_id}/drain?timeout_s={timeout_s}")
        return result

    def remove_webhook(self, endpoint_id: str) -> None:
        self._call("DELETE", f"/webhooks/{endpoint_id}")

    def remove_webhooks(self) -> None:
        self._call("DELETE", "/webhooks")
