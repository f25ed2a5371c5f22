"""Why a connection request is refused: a stable code for machines and a message for people."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from uuid import UUID

from contracts.events import ConnectionRejected

from connector.domain.connection import rejection_event_id


class RefusalCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_KEY_FORMAT = "invalid_key_format"
    PUBLISHABLE_KEY = "publishable_key"
    KEY_REJECTED = "key_rejected"
    INSUFFICIENT_PERMISSIONS = "insufficient_permissions"
    INVALID_SITE = "invalid_site"
    SITE_NOT_FOUND = "site_not_found"
    SITE_BLOCKED = "site_blocked"
    INVALID_STATE = "invalid_state"
    ACCOUNT_MISMATCH = "account_mismatch"
    AUTHORIZATION_DENIED = "authorization_denied"
    AUTHORIZATION_FAILED = "authorization_failed"
    PROCESSOR_UNAVAILABLE = "processor_unavailable"
    RATE_LIMITED = "rate_limited"
    STRIPE_CONNECT_UNAVAILABLE = "stripe_connect_unavailable"
    ALREADY_CONNECTED = "already_connected"
    DIFFERENT_PROCESSOR_ACCOUNT = "different_processor_account"
    NOT_CONNECTED = "not_connected"
    CONNECTION_NOT_FOUND = "connection_not_found"
    IMPORT_IN_PROGRESS = "import_in_progress"
    INVALID_RETURN_URL = "invalid_return_url"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    FEATURE_UNAVAILABLE = "feature_unavailable"
    SUBSCRIPTION_NOT_FOUND = "subscription_not_found"
    COUPON_NOT_FOUND = "coupon_not_found"
    OFFER_NOT_APPLICABLE = "offer_not_applicable"
    PLAINTEXT_SECRET = "plaintext_secret"  # noqa: S105 - an error code
    SEALED_SECRET_INVALID = "sealed_secret_invalid"  # noqa: S105 - an error code


class ConnectionRefused(Exception):
    """A request the connector will not carry out; nothing was stored or announced.

    ``message`` is shown to the person onboarding, so it says what to do next and never quotes a
    secret or a processor's own error text (which may echo part of the key).
    """

    def __init__(
        self,
        code: RefusalCode,
        message: str,
        *,
        retry_after_s: int | None = None,
        missing_permissions: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.missing_permissions = tuple(missing_permissions)

    def __repr__(self) -> str:
        return f"ConnectionRefused({self.code.value!r}, {self.message!r})"


def processor_unavailable(processor: str, retry_after_s: int | None = None) -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.PROCESSOR_UNAVAILABLE,
        f"{processor} did not answer in time. Nothing was saved; please try again in a moment.",
        retry_after_s=retry_after_s,
    )


def rate_limited(processor: str, retry_after_s: int | None = None) -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.RATE_LIMITED,
        f"{processor} is limiting requests for this account right now. Nothing was saved; "
        "please try again shortly.",
        retry_after_s=retry_after_s,
    )


def already_connected() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.ALREADY_CONNECTED,
        "This account already has a connected payment processor. Disconnect it first to connect another one.",
    )


def different_processor_account(processor: str) -> ConnectionRefused:
    """A reconnect that would reach another processor account than the one whose history is kept."""
    return ConnectionRefused(
        RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT,
        f"This account's connection needs to be reconnected to the same {processor} account it "
        "was connected to, so that its history stays consistent. Use a key of that account, or "
        "disconnect first to connect another one.",
    )


def invalid_state() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.INVALID_STATE,
        "This authorization link is invalid, was already used or has expired. Start the Stripe "
        "connection again.",
    )


def plaintext_secret() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.PLAINTEXT_SECRET,
        "The API key arrived unsealed and was not used. Secrets must be sealed to the connector's "
        "public key.",
    )


def rejection_of(account_id: str, request_event_id: UUID, refusal: ConnectionRefused) -> ConnectionRejected:
    """The gateway's answer to a refused onboarding request; its id is derived from the request's, so
    a redelivered request is refused only once."""
    return ConnectionRejected(
        event_id=rejection_event_id(request_event_id),
        account_id=account_id,
        code=refusal.code.value,
        message=refusal.message,
        request_event_id=request_event_id,
    )
