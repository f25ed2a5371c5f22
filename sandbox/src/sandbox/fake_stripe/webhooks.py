"""Stripe Connect webhooks from the fake: events of connected accounts, signed like Stripe signs them.

The body is the event with the top-level `account` it came from, pretty-printed as Stripe sends
it (re-serialised JSON does not match the signature). `Stripe-Signature: t=…,v1=…` where `v1` is
HMAC-SHA256 with the endpoint secret over `"{t}.{raw body}"`; with `old_secret` a second `v1`
follows, as while a secret is being rolled. Each attempt is signed with a fresh `t`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING

from sandbox.collection import Obj
from sandbox.webhooks import EndpointSpec

if TYPE_CHECKING:
    from sandbox.fake_stripe.state import StripeSandbox

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
ALWAYS_SENT = frozenset({"account.application.deauthorized"})
"""Sent to Connect endpoints even though the account is no longer connected."""


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class StripeWebhookFlavor:
    def __init__(self, sandbox: StripeSandbox) -> None:
        self.sandbox = sandbox

    def validate(self, spec: EndpointSpec) -> None:
        for secret in (spec.secret, spec.old_secret):
            if secret is not None and not secret.startswith("whsec_"):
                raise ValueError("a Stripe endpoint secret starts with whsec_")
        if spec.secret is None:
            raise ValueError("a Stripe webhook endpoint needs its signing secret (whsec_…)")

    def wants(self, spec: EndpointSpec, scope: str, event: Obj) -> bool:
        if scope == self.sandbox.platform.account_id:
            return False  # a Connect endpoint gets the connected accounts' events only
        if spec.scopes is not None:
            return scope in spec.scopes
        return scope in self.sandbox.oauth.connected or event.get("type") in ALWAYS_SENT

    def body(self, scope: str, event: Obj) -> bytes:
        payload = {"id": event["id"], "object": "event", "account": scope, **event}
        return json.dumps(payload, indent=2, ensure_ascii=False).encode()

    def headers(self, spec: EndpointSpec, body: bytes) -> dict[str, str]:
        assert spec.secret is not None
        timestamp = int(time.time()) + spec.signature_time_offset_s
        parts = [f"t={timestamp}", f"v1={stripe_signature(spec.secret, timestamp, body)}"]
        if spec.old_secret:
            parts.append(f"v1={stripe_signature(spec.old_secret, timestamp, body)}")
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": ",".join(parts),
        }
