"""What the use cases need from the outside world, as small protocols the adapters implement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from contracts.connections import ConnectionStatus
from contracts.events import Event
from pydantic import SecretStr

from connector.domain.connection import (
    Connection,
    ImportStatus,
    LatestImport,
    LossReason,
    PendingReconnect,
    Reconnection,
)
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite, StripeApiKey
from connector.domain.oauth import OAuthGrant, StripeAuthorization

Clock = Callable[[], datetime]
ProductCatalog = Literal["1.0", "2.0"]


class AccountBusy(Exception):
    """The account already has a current connection (the store's uniqueness rule said so)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event to publish, kept with the state change that caused it until it is published."""

    topic: str
    event: Event


class ConnectionStore(Protocol):
    """The ``connections`` collection. Each write changes one document, with its outgoing events."""

    async def get(self, connection_id: str) -> Connection | None: ...

    async def active(self, account_id: str) -> Connection | None: ...

    async def latest(self, account_id: str) -> Connection | None:
        """The current connection, else the most recent one (disconnected)."""
        ...

    async def open(self, connection: Connection, events: Sequence[Outgoing]) -> None:
        """Store a new connection; :class:`AccountBusy` if the account already has a current one."""
        ...

    async def authorize(
        self,
        connection_id: str,
        *,
        credentials_ciphertext: str,
        connected_at: datetime,
        latest_import: LatestImport,
        events: Sequence[Outgoing],
        write_access: bool = False,
        write_access_reason: str | None = None,
    ) -> Connection | None:
        """Pending → connected; ``None`` if it was no longer pending."""
        ...

    async def disconnect(
        self,
        connection_id: str,
        *,
        from_status: ConnectionStatus,
        at: datetime,
        events: Sequence[Outgoing] = (),
        revoke_grant_of: str | None = None,
    ) -> bool:
        """``from_status`` → disconnected, credentials destroyed; ``False`` if the status had changed.

        ``revoke_grant_of``: the Stripe account whose OAuth grant to our platform is to be revoked,
        recorded in the same write so that it is revoked even if the process stops right after.
        """
        ...

    async def begin_reconnect(
        self, connection_id: str, pending: PendingReconnect, events: Sequence[Outgoing]
    ) -> bool:
        """Keep a Stripe reconnect's new key until its OAuth callback (in place of an earlier one);
        ``False`` unless the connection is ``needs_reconnect``."""
        ...

    async def reconnect(
        self, connection_id: str, reconnection: Reconnection, events: Sequence[Outgoing]
    ) -> Connection | None:
        """``needs_reconnect`` → connected with the new credentials, a pending reconnect dropped;
        ``None`` if the connection was not ``needs_reconnect`` any more."""
        ...

    async def drop_pending_reconnect(
        self, connection_id: str, events: Sequence[Outgoing] = (), *, ciphertext: str | None = None
    ) -> bool:
        """Forget a pending Stripe reconnect (denied, failed, expired), its key with it; ``False`` if
        there was none (or, given ``ciphertext``, if it is not the one holding that key any more)."""
        ...

    async def pending_reconnects_since(self, before: datetime, *, limit: int) -> list[Connection]:
        """Connections holding a pending Stripe reconnect requested before ``before``."""
        ...

    async def reconnected_by(self, request_event_id: UUID) -> Connection | None:
        """The connection an onboarding request already reconnected (or began to), if any."""
        ...

    async def lose_credentials(
        self,
        connection_id: str,
        *,
        reason: LossReason,
        at: datetime,
        events: Sequence[Outgoing],
        credentials_version: int | None = None,
    ) -> Connection | None:
        """Connected → needs_reconnect, with ``events`` in the same write; ``None`` (and nothing
        written) when the connection was not connected, e.g. because it already lost them, or when
        it holds newer credentials than ``credentials_version`` (the ones refused were replaced)."""
        ...

    async def revoke_grant_later(self, connection_id: str, stripe_user_id: str) -> None:
        """Record that the grant of ``stripe_user_id`` is to be revoked (see ``disconnect``)."""
        ...

    async def awaiting_authorization_since(self, before: datetime, *, limit: int) -> list[Connection]:
        """Connections still ``awaiting_authorization`` that were created before ``before``."""
        ...

    async def grants_to_revoke(self, *, limit: int, due_by: datetime | None = None) -> list[tuple[str, str]]:
        """``(connection_id, stripe_user_id)`` of grants still to revoke; with ``due_by``, only those
        whose next attempt is due by then, the longest waiting first."""
        ...

    async def revocation_deferred(
        self, connection_id: str, stripe_user_id: str, *, retry_at: Callable[[int], datetime]
    ) -> int:
        """Count a failed attempt and set the next one to ``retry_at(attempts so far)``; the count."""
        ...

    async def grant_revoked(self, connection_id: str, stripe_user_id: str) -> None: ...

    async def request_import(
        self, connection_id: str, latest_import: LatestImport, events: Sequence[Outgoing]
    ) -> bool:
        """Record a new import of a connected connection; ``False`` if it is not connected or its
        latest import is still queued or running (one import at a time)."""
        ...

    async def record_import(
        self,
        account_id: str,
        import_id: str,
        *,
        status: ImportStatus,
        at: datetime,
        error_code: str | None = None,
    ) -> bool:
        """Follow the importer's progress of the latest import this connector asked for."""
        ...

    async def add_events(self, connection_id: str, events: Sequence[Outgoing]) -> None: ...

    async def mark_published(self, connection_id: str, event_ids: Sequence[str]) -> None: ...

    async def unpublished(self, *, queued_before: datetime, limit: int) -> list[tuple[str, list[Outgoing]]]:
        """Connections holding events not yet published, oldest first."""
        ...

    def stored_credentials(self) -> AsyncIterator[tuple[str, str]]:
        """``(connection_id, credentials_ciphertext)`` of every connection that holds credentials."""
        ...

    async def replace_credentials(self, connection_id: str, *, old: str, new: str) -> bool:
        """Swap the ciphertext unless it changed meanwhile."""
        ...

    def stored_pending_credentials(self) -> AsyncIterator[tuple[str, str]]:
        """``(connection_id, ciphertext)`` of every pending Stripe reconnect's new key."""
        ...

    async def replace_pending_credentials(self, connection_id: str, *, old: str, new: str) -> bool:
        """Swap a pending reconnect's ciphertext unless it changed (or was used, dropped) meanwhile."""
        ...


class OAuthStateStore(Protocol):
    async def save(self, grant: OAuthGrant) -> None: ...

    async def consume(self, state_digest: str, now: datetime) -> OAuthGrant | None:
        """Take the unexpired grant of this state so that nobody can use it again; atomic."""
        ...

    async def discard_for(self, connection_id: str) -> None: ...


class OnboardingLinks(Protocol):
    """The onboarding links already followed: each one opens a session once."""

    async def claim(self, link_id: str, expires_at: datetime) -> bool:
        """``True`` for the first use of the link, ``False`` ever after (until it has expired)."""
        ...


class StripeGateway(Protocol):
    async def account_of(self, key: StripeApiKey) -> str:
        """The id of the Stripe account the key belongs to (``GET /v1/account``)."""
        ...

    async def unreadable_resources(self, key: StripeApiKey, resources: Sequence[str]) -> list[str]:
        """Those of ``resources`` the (restricted) key may not list."""
        ...

    async def exchange_code(self, code: str) -> StripeAuthorization: ...

    async def deauthorize(self, stripe_user_id: str) -> bool:
        """Revoke the account's OAuth grant to our platform: ``True`` if Stripe revoked one,
        ``False`` if there was none (any more), which is done too. Raises
        :class:`~connector.domain.oauth.GrantRevocationDeferred` when Stripe could not be asked now.
        """
        ...


class ChargebeeGateway(Protocol):
    async def check_access(self, site: ChargebeeSite, key: ChargebeeApiKey) -> None:
        """Raise a refusal unless the key can read the site's customers."""
        ...

    async def product_catalog(self, site: ChargebeeSite, key: ChargebeeApiKey) -> ProductCatalog: ...

    async def write_refusal(
        self, site: ChargebeeSite, key: ChargebeeApiKey, catalog: ProductCatalog
    ) -> str | None:
        """Why the key may not write (``read_only_key`` ...), or ``None`` when it may; told without
        changing anything at Chargebee."""
        ...


class EventPublisher(Protocol):
    async def publish(self, topic: str, event: Event) -> None: ...


class SealedSecrets(Protocol):
    def open(self, sealed: str) -> SecretStr:
        """The secret the gateway sealed to our public key; refuses anything else."""
        ...
