"""Stripe's webhook signature check (``Stripe-Signature``), done the way Stripe's own libraries do it.

The header is ``t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]``. Each ``v1`` is HMAC-SHA256, keyed
with the endpoint's signing secret, over ``"{t}.{raw body}"``: the raw bytes as received, since
re-serialised JSON would not match. Several ``v1`` values appear while Stripe rolls a secret; other
schemes (``v0``) are ignored. Every configured secret (``STRIPE_WEBHOOK_SECRET``, newest first) is
compared against every ``v1`` in constant time, and a timestamp further than the tolerance from now
(300 s, Stripe's default) is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

SIGNATURE_SCHEME: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300


class InvalidSignature(Exception):
    """The request is not provably from Stripe (or is too old); nothing may change because of it."""


@dataclass(frozen=True, slots=True)
class StripeWebhookSecrets:
    """The endpoint's signing secrets, newest first; empty: Stripe webhooks are refused."""

    secrets: tuple[bytes, ...]
    tolerance_s: int = DEFAULT_TOLERANCE_S

    @classmethod
    def from_setting(cls, value: str | None) -> StripeWebhookSecrets:
        """From ``STRIPE_WEBHOOK_SECRET``: comma-separated, newest first."""
        secrets = [part.strip() for part in (value or "").split(",")]
        return cls(tuple(secret.encode() for secret in secrets if secret))

    @property
    def configured(self) -> bool:
        return bool(self.secrets)

    def verify(self, payload: bytes, header: str | None, *, now_s: float) -> None:
        """Return when ``header`` signs ``payload`` with one of the secrets; else raise."""
        if not self.secrets:
            raise InvalidSignature("no Stripe webhook secret is configured")
        timestamp, signatures = parse_header(header)
        if abs(now_s - timestamp) > self.tolerance_s:
            raise InvalidSignature("the signature's timestamp is outside the tolerance")
        signed = str(timestamp).encode() + b"." + payload
        expected = [hmac.new(secret, signed, hashlib.sha256).hexdigest().encode() for secret in self.secrets]
        # Every comparison runs, match or not: how long this takes says nothing about the secrets.
        matched = False
        for candidate in signatures:
            for digest in expected:
                matched |= hmac.compare_digest(candidate, digest)
        if not matched:
            raise InvalidSignature("no v1 signature matches")


def parse_header(header: str | None) -> tuple[int, Sequence[bytes]]:
    """The timestamp and the ``v1`` signatures of a ``Stripe-Signature`` header."""
    if not header:
        raise InvalidSignature("the Stripe-Signature header is missing")
    timestamp: int | None = None
    signatures: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as error:
                raise InvalidSignature("the signature's timestamp is not a number") from error
        elif key == SIGNATURE_SCHEME:
            signatures.append(value.strip().encode())
    if timestamp is None:
        raise InvalidSignature("the Stripe-Signature header has no timestamp")
    if not signatures:
        raise InvalidSignature("the Stripe-Signature header has no v1 signature")
    return timestamp, signatures


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header value as Stripe would send it (for tests and the sandbox)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SIGNATURE_SCHEME}={digest}"
