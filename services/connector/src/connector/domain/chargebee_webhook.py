"""Chargebee webhooks: per-connection Basic credentials, and what a webhook's event says changed.

Chargebee has no signature; its admin enters a user name and password for the endpoint. Each
Chargebee connection gets its own pair, shown once in the connect call's answer. Only a SHA-256 of
the password is stored: the password is 32 random bytes, so a slow hash would add nothing against
guessing and cost every webhook CPU time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from contracts.events import Processor
from contracts.sync import ProcessorEventReceived
from pydantic import SecretStr

PASSWORD_BYTES: Final = 32
USERNAME_PREFIX: Final = "cb_"

#: The content keys of Chargebee's objects, longest first so ``item_price`` wins over ``item``.
_OBJECT_KEYS: Final = (
    "item_price",
    "subscription",
    "customer",
    "invoice",
    "credit_note",
    "coupon",
    "addon",
    "plan",
    "item",
)


@dataclass(frozen=True, slots=True)
class WebhookCredentials:
    username: str
    password: SecretStr

    @property
    def password_sha256(self) -> str:
        return password_digest(self.password.get_secret_value())


def new_webhook_credentials(connection_id: str) -> WebhookCredentials:
    return WebhookCredentials(
        username=f"{USERNAME_PREFIX}{connection_id}",
        password=SecretStr(secrets.token_urlsafe(PASSWORD_BYTES)),
    )


def password_digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def credentials_match(
    *, expected_username: str | None, expected_sha256: str | None, username: str, password: str
) -> bool:
    """Whether the request's Basic credentials are the connection's (constant time in the password)."""
    if not expected_username or not expected_sha256:
        return False
    same_password = hmac.compare_digest(password_digest(password).encode(), expected_sha256.encode())
    return hmac.compare_digest(username.encode(), expected_username.encode()) and same_password


class MalformedWebhook(ValueError):
    """A body that is not a Chargebee event."""


def chargebee_event(
    body: Mapping[str, Any], *, site: str, connection_id: str, account_id: str
) -> ProcessorEventReceived:
    """The change a Chargebee webhook's event announces, for the importer to apply."""
    event_id, event_type, occurred_at = body.get("id"), body.get("event_type"), body.get("occurred_at")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(occurred_at, int):
        raise MalformedWebhook("a Chargebee event has an id, an event_type and an occurred_at")
    content = body.get("content")
    content = content if isinstance(content, Mapping) else {}
    object_type = _object_type(event_type, content)
    changed = content.get(object_type) if object_type else None
    changed = changed if isinstance(changed, Mapping) else {}
    object_id, version = changed.get("id"), changed.get("resource_version")
    return ProcessorEventReceived(
        processor=Processor.CHARGEBEE,
        processor_account_id=site,
        processor_event_id=event_id,
        event_type=event_type,
        created=_moment(occurred_at),
        object_type=object_type,
        object_id=object_id if isinstance(object_id, str) else None,
        resource_version=version if isinstance(version, int) else None,
        connection_id=connection_id,
        account_id=account_id,
    )


def _object_type(event_type: str, content: Mapping[str, Any]) -> str | None:
    for key in _OBJECT_KEYS:
        if event_type.startswith(f"{key}_") and key in content:
            return key
    return next((key for key in _OBJECT_KEYS if key in content), None)


def _moment(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise MalformedWebhook("the event's time is out of range") from error
