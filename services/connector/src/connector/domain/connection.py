"""A connection of one account to its payment processor, and what each state of it makes available."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal
from uuid import UUID

from contracts.connections import ConnectionStatus, StoredConnection
from contracts.events import SKIP_DISABLED_FEATURES, Feature, Mode
from pydantic import AwareDatetime, BaseModel, ConfigDict

#: Statuses in which a connection is the account's current one (at most one at a time).
ACTIVE_STATUSES: Final = frozenset(
    {
        ConnectionStatus.AWAITING_AUTHORIZATION,
        ConnectionStatus.CONNECTED,
        ConnectionStatus.SKIPPED,
        ConnectionStatus.NEEDS_RECONNECT,
    }
)

_REQUEST_NAMESPACE: Final = UUID("6b1f3a52-0c55-4a55-9a3c-4f4bb0b6d2a1")


#: Why a connection lost its credentials (``ConnectionLost.reason``): Stripe said the account
#: removed our platform's access, or the processor answered 401 to them.
LossReason = Literal["deauthorized", "credentials_rejected"]
DEAUTHORIZED: Final = "deauthorized"
CREDENTIALS_REJECTED: Final = "credentials_rejected"


class ImportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


#: An import in one of these statuses blocks another of the same connection (one at a time).
IMPORT_IN_PROGRESS_STATUSES: Final = frozenset({ImportStatus.QUEUED, ImportStatus.RUNNING})


class LatestImport(BaseModel):
    """The last import this connector asked for, as far as the importer's events told us."""

    model_config = ConfigDict(frozen=True)

    import_id: str
    status: ImportStatus
    requested_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    error_code: str | None = None


class PendingReconnect(BaseModel):
    """A Stripe reconnect waiting for the person to authorize again: the new key, encrypted, until
    the OAuth callback puts it in place of the old credentials (or drops it)."""

    model_config = ConfigDict(frozen=True)

    credentials_ciphertext: str
    mode: Mode
    contact_email: str | None = None
    return_url: str | None = None
    request_event_id: UUID | None = None
    requested_at: AwareDatetime


class Reconnection(BaseModel):
    """What a reconnect writes over a ``needs_reconnect`` connection: the new credentials (the old
    ciphertext is replaced, so destroyed) and what was verified with them."""

    model_config = ConfigDict(frozen=True)

    credentials_ciphertext: str
    at: AwareDatetime
    write_access: bool
    write_access_reason: str | None = None
    mode: Mode | None = None
    contact_email: str | None = None
    product_catalog: Literal["1.0", "2.0"] | None = None
    #: The full import the reconnect starts, when sync cannot resume from where it stopped.
    latest_import: LatestImport | None = None
    #: The onboarding request (Kafka intake) it answers.
    request_event_id: UUID | None = None


class Connection(StoredConnection):
    """The shared ``connections`` document plus what only the connector reads."""

    #: Where the browser goes after the Stripe OAuth leg.
    return_url: str | None = None
    #: The onboarding request (Kafka intake) that opened this connection, so its answers can refer to it.
    request_event_id: UUID | None = None
    latest_import: LatestImport | None = None
    #: Chargebee webhooks: the Basic user name, and the SHA-256 of the password shown once at connect.
    webhook_username: str | None = None
    webhook_password_sha256: str | None = None
    #: A Stripe reconnect of this (``needs_reconnect``) connection waiting for its OAuth callback.
    pending_reconnect: PendingReconnect | None = None
    #: The onboarding requests (Kafka intake) that reconnected this connection: each is answered once.
    reconnect_request_ids: tuple[UUID, ...] = ()
    #: Since when, and why, the processor refuses the stored credentials (``needs_reconnect``).
    credentials_lost_at: AwareDatetime | None = None
    loss_reason: LossReason | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def is_stale_report(connection: StoredConnection, credentials_version: int | None) -> bool:
    """Whether a report of refused credentials is about credentials the connection no longer holds
    (a reconnect replaced them after the refused request was made). A report naming no version
    (an older importer, Stripe's deauthorization) is taken as it is."""
    return credentials_version is not None and credentials_version < connection.credentials_version


def before_reconnect(connection: StoredConnection, created: datetime) -> bool:
    """Whether a processor event (Stripe's deauthorization, ``created`` to the second) is from
    before the connection's last reconnect, so about the grant that reconnect replaced."""
    if connection.reconnected_at is None:
        return False
    return int(created.timestamp()) < int(connection.reconnected_at.timestamp())


def new_connection_id() -> str:
    return f"con_{uuid.uuid4().hex}"


def connection_id_for_request(request_event_id: UUID) -> str:
    """The connection a Kafka onboarding request opens: the same on every redelivery of it."""
    return f"con_{uuid.uuid5(_REQUEST_NAMESPACE, str(request_event_id)).hex}"


def rejection_event_id(request_event_id: UUID) -> UUID:
    """The id of the refusal answering a request, so a redelivered request is refused only once."""
    return uuid.uuid5(_REQUEST_NAMESPACE, f"rejected:{request_event_id}")


def new_import_id() -> str:
    return f"imp_{uuid.uuid4().hex}"


#: The features that write at the processor: on only where write access was verified at connect.
OFFER_FEATURES: Final = (Feature.COUPON_OFFERS, Feature.TRIAL_EXTENSION_OFFERS)
#: Why the offer features are off although the processor is connected, when nothing more is known.
WRITE_ACCESS_NOT_VERIFIED: Final = "not_verified"
READ_ONLY_KEY: Final = "read_only_key"
READ_ONLY_GRANT: Final = "read_only_grant"


def features_of(status: ConnectionStatus | None, *, write_access: bool = True) -> Mapping[Feature, bool]:
    """Which product features the account has: all with a connected processor whose write access
    was verified (the offers need it).

    A connection that lost its credentials (``needs_reconnect``) keeps what reads the stored history
    and loses the offers, which write at the processor. Without a processor (skipped, still
    awaiting Stripe's authorization, or disconnected) the features that need its history are off
    too; the rest stay on.
    """
    if status is ConnectionStatus.CONNECTED:
        return {feature: write_access or feature not in OFFER_FEATURES for feature in Feature}
    if status is ConnectionStatus.NEEDS_RECONNECT:
        return {feature: feature not in OFFER_FEATURES for feature in Feature}
    return {feature: feature not in SKIP_DISABLED_FEATURES for feature in Feature}


def feature_reasons(connection: StoredConnection) -> Mapping[Feature, str]:
    """Why each offer feature that is off is off (``read_only_key``, ``skipped`` ...)."""
    on = features_of(connection.status, write_access=connection.write_access)
    reasons: dict[Feature, str] = {}
    for feature in OFFER_FEATURES:
        if on[feature]:
            continue
        if connection.status is ConnectionStatus.CONNECTED:
            reasons[feature] = connection.write_access_reason or WRITE_ACCESS_NOT_VERIFIED
        else:
            # skipped, awaiting_authorization, needs_reconnect, disconnected ...: the status says it.
            reasons[feature] = connection.status.value
    return reasons
