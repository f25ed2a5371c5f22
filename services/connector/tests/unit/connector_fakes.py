"""In-memory stand-ins for the connector's ports, with the same rules as the real adapters."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from connector.adapters.sealed_box import SealedBoxSecrets
from connector.domain.connection import (
    IMPORT_IN_PROGRESS_STATUSES,
    Connection,
    ImportStatus,
    LatestImport,
    LossReason,
    PendingReconnect,
    Reconnection,
)
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite, StripeApiKey
from connector.domain.oauth import (
    GrantRevocationDeferred,
    OAuthGrant,
    StripeAuthorization,
    StripeConnectPlatform,
)
from connector.domain.ports import AccountBusy, Outgoing, ProductCatalog
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.domain.return_url import ReturnUrlPolicy
from connector.service.dependencies import Dependencies
from contracts.connections import ConnectionStatus, CredentialCipher
from contracts.events import Event
from contracts.sync import ProcessorEventReceived, StoredSyncState
from nacl.public import PrivateKey
from pydantic import SecretStr

STRIPE_KEY = "sk_test_51UnitAcmeSecretKey0000000000000000acme"
STRIPE_RESTRICTED_KEY = "rk_test_51UnitAcmeRestrictedKey000000000rstr"
STRIPE_ACCOUNT = "acct_1UnitAcme"
OTHER_STRIPE_ACCOUNT = "acct_1UnitGlobex"
CHARGEBEE_SITE = "acme-test"
CHARGEBEE_KEY = "test_UnitAcmeChargebeeKey0000000000acme"
CLIENT_ID = "ca_UnitPlatform"
ALL_TEST_SECRETS = (STRIPE_KEY, STRIPE_RESTRICTED_KEY, CHARGEBEE_KEY)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class StoredDocument:
    connection: Connection
    outbox: list[Outgoing] = field(default_factory=list)
    revoke_grant_of: str | None = None
    revoke_attempts: int = 0
    revoke_retry_at: datetime | None = None


class InMemoryConnections:
    def __init__(self) -> None:
        self.documents: dict[str, StoredDocument] = {}

    def _update(self, connection_id: str, events: Sequence[Outgoing] = (), **changes: Any) -> Connection:
        document = self.documents[connection_id]
        document.connection = document.connection.model_copy(update=changes)
        document.outbox.extend(events)
        return document.connection

    async def get(self, connection_id: str) -> Connection | None:
        document = self.documents.get(connection_id)
        return None if document is None else document.connection

    async def active(self, account_id: str) -> Connection | None:
        return next(
            (
                d.connection
                for d in self.documents.values()
                if d.connection.account_id == account_id and d.connection.active
            ),
            None,
        )

    async def latest(self, account_id: str) -> Connection | None:
        current = await self.active(account_id)
        if current is not None:
            return current
        mine = [d.connection for d in self.documents.values() if d.connection.account_id == account_id]
        return max(mine, key=lambda c: c.created_at, default=None)

    async def open(self, connection: Connection, events: Sequence[Outgoing]) -> None:
        if connection.connection_id in self.documents or await self.active(connection.account_id):
            raise AccountBusy(connection.account_id)
        self.documents[connection.connection_id] = StoredDocument(connection, list(events))

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
        current = await self.get(connection_id)
        if current is None or current.status is not ConnectionStatus.AWAITING_AUTHORIZATION:
            return None
        return self._update(
            connection_id,
            events,
            status=ConnectionStatus.CONNECTED,
            credentials_ciphertext=credentials_ciphertext,
            connected_at=connected_at,
            latest_import=latest_import,
            write_access=write_access,
            write_access_reason=write_access_reason,
        )

    async def disconnect(
        self,
        connection_id: str,
        *,
        from_status: ConnectionStatus,
        at: datetime,
        events: Sequence[Outgoing] = (),
        revoke_grant_of: str | None = None,
    ) -> bool:
        current = await self.get(connection_id)
        if current is None or current.status is not from_status:
            return False
        self._update(
            connection_id,
            events,
            status=ConnectionStatus.DISCONNECTED,
            disconnected_at=at,
            credentials_ciphertext=None,
            pending_reconnect=None,
        )
        if revoke_grant_of is not None:
            self.documents[connection_id].revoke_grant_of = revoke_grant_of
        return True

    async def awaiting_authorization_since(self, before: datetime, *, limit: int) -> list[Connection]:
        waiting = [
            d.connection
            for d in self.documents.values()
            if d.connection.status is ConnectionStatus.AWAITING_AUTHORIZATION
            and d.connection.created_at < before
        ]
        return sorted(waiting, key=lambda connection: connection.created_at)[:limit]

    async def pending_reconnects_since(self, before: datetime, *, limit: int) -> list[Connection]:
        waiting = [
            d.connection
            for d in self.documents.values()
            if d.connection.pending_reconnect is not None
            and d.connection.pending_reconnect.requested_at < before
        ]
        return waiting[:limit]

    async def begin_reconnect(
        self, connection_id: str, pending: PendingReconnect, events: Sequence[Outgoing]
    ) -> bool:
        current = await self.get(connection_id)
        if current is None or current.status is not ConnectionStatus.NEEDS_RECONNECT:
            return False
        ids = current.reconnect_request_ids
        if pending.request_event_id is not None and pending.request_event_id not in ids:
            ids = (*ids, pending.request_event_id)
        self._update(connection_id, events, pending_reconnect=pending, reconnect_request_ids=ids)
        return True

    async def reconnect(
        self, connection_id: str, reconnection: Reconnection, events: Sequence[Outgoing]
    ) -> Connection | None:
        current = await self.get(connection_id)
        if current is None or current.status is not ConnectionStatus.NEEDS_RECONNECT:
            return None
        changes: dict[str, Any] = {
            "status": ConnectionStatus.CONNECTED,
            "credentials_ciphertext": reconnection.credentials_ciphertext,
            "reconnected_at": reconnection.at,
            "write_access": reconnection.write_access,
            "write_access_reason": reconnection.write_access_reason,
            "pending_reconnect": None,
            "credentials_version": current.credentials_version + 1,
        }
        for name in ("mode", "contact_email", "product_catalog", "latest_import"):
            if getattr(reconnection, name) is not None:
                changes[name] = getattr(reconnection, name)
        ids = current.reconnect_request_ids
        if reconnection.request_event_id is not None and reconnection.request_event_id not in ids:
            changes["reconnect_request_ids"] = (*ids, reconnection.request_event_id)
        return self._update(connection_id, events, **changes)

    async def drop_pending_reconnect(
        self, connection_id: str, events: Sequence[Outgoing] = (), *, ciphertext: str | None = None
    ) -> bool:
        current = await self.get(connection_id)
        if current is None or current.pending_reconnect is None:
            return False
        if ciphertext is not None and current.pending_reconnect.credentials_ciphertext != ciphertext:
            return False
        self._update(connection_id, events, pending_reconnect=None)
        return True

    async def reconnected_by(self, request_event_id: UUID) -> Connection | None:
        return next(
            (
                d.connection
                for d in self.documents.values()
                if request_event_id in d.connection.reconnect_request_ids
            ),
            None,
        )

    def lose(self, connection_id: str) -> Connection:
        """What the lifecycle does when the processor refuses the stored credentials."""
        return self._update(connection_id, status=ConnectionStatus.NEEDS_RECONNECT)

    async def lose_credentials(
        self,
        connection_id: str,
        *,
        reason: LossReason,
        at: datetime,
        events: Sequence[Outgoing],
        credentials_version: int | None = None,
    ) -> Connection | None:
        current = await self.get(connection_id)
        if current is None or current.status is not ConnectionStatus.CONNECTED:
            return None
        if credentials_version is not None and current.credentials_version > credentials_version:
            return None
        return self._update(
            connection_id,
            events,
            status=ConnectionStatus.NEEDS_RECONNECT,
            credentials_lost_at=at,
            loss_reason=reason,
        )

    async def revoke_grant_later(self, connection_id: str, stripe_user_id: str) -> None:
        self.documents[connection_id].revoke_grant_of = stripe_user_id

    async def grants_to_revoke(self, *, limit: int, due_by: datetime | None = None) -> list[tuple[str, str]]:
        due = sorted(
            (
                (d.revoke_retry_at or _EPOCH, connection_id, d.revoke_grant_of)
                for connection_id, d in self.documents.items()
                if d.revoke_grant_of is not None
                and (due_by is None or d.revoke_retry_at is None or d.revoke_retry_at <= due_by)
            ),
        )
        return [(connection_id, grant) for _, connection_id, grant in due][:limit]

    async def revocation_deferred(
        self, connection_id: str, stripe_user_id: str, *, retry_at: Callable[[int], datetime]
    ) -> int:
        document = self.documents[connection_id]
        if document.revoke_grant_of != stripe_user_id:
            return 0
        document.revoke_attempts += 1
        document.revoke_retry_at = retry_at(document.revoke_attempts)
        return document.revoke_attempts

    async def grant_revoked(self, connection_id: str, stripe_user_id: str) -> None:
        document = self.documents[connection_id]
        if document.revoke_grant_of == stripe_user_id:
            document.revoke_grant_of, document.revoke_attempts, document.revoke_retry_at = None, 0, None

    async def request_import(
        self, connection_id: str, latest_import: LatestImport, events: Sequence[Outgoing]
    ) -> bool:
        current = await self.get(connection_id)
        if current is None or current.status is not ConnectionStatus.CONNECTED:
            return False
        if current.latest_import is not None and current.latest_import.status in IMPORT_IN_PROGRESS_STATUSES:
            return False
        self._update(connection_id, events, latest_import=latest_import)
        return True

    async def record_import(
        self,
        account_id: str,
        import_id: str,
        *,
        status: ImportStatus,
        at: datetime,
        error_code: str | None = None,
    ) -> bool:
        before = {
            ImportStatus.RUNNING: {ImportStatus.QUEUED},
            ImportStatus.COMPLETED: {ImportStatus.QUEUED, ImportStatus.RUNNING},
            ImportStatus.FAILED: {ImportStatus.QUEUED, ImportStatus.RUNNING},
        }[status]
        for document in self.documents.values():
            latest = document.connection.latest_import
            if document.connection.account_id == account_id and latest and latest.import_id == import_id:
                if latest.status not in before:
                    return False
                changes: dict[str, Any] = {"status": status}
                changes["started_at" if status is ImportStatus.RUNNING else "finished_at"] = at
                if error_code is not None:
                    changes["error_code"] = error_code
                self._update(
                    document.connection.connection_id, latest_import=latest.model_copy(update=changes)
                )
                return True
        return False

    async def add_events(self, connection_id: str, events: Sequence[Outgoing]) -> None:
        self.documents[connection_id].outbox.extend(events)

    async def mark_published(self, connection_id: str, event_ids: Sequence[str]) -> None:
        document = self.documents[connection_id]
        document.outbox = [o for o in document.outbox if str(o.event.event_id) not in event_ids]

    async def unpublished(self, *, queued_before: datetime, limit: int) -> list[tuple[str, list[Outgoing]]]:
        return [
            (connection_id, list(d.outbox))
            for connection_id, d in self.documents.items()
            if any(o.event.occurred_at < queued_before for o in d.outbox)
        ][:limit]

    async def stored_credentials(self) -> AsyncIterator[tuple[str, str]]:
        for connection_id, document in list(self.documents.items()):
            if document.connection.credentials_ciphertext is not None:
                yield connection_id, document.connection.credentials_ciphertext

    async def replace_credentials(self, connection_id: str, *, old: str, new: str) -> bool:
        if self.documents[connection_id].connection.credentials_ciphertext != old:
            return False
        self._update(connection_id, credentials_ciphertext=new)
        return True

    async def stored_pending_credentials(self) -> AsyncIterator[tuple[str, str]]:
        for connection_id, document in list(self.documents.items()):
            if document.connection.pending_reconnect is not None:
                yield connection_id, document.connection.pending_reconnect.credentials_ciphertext

    async def replace_pending_credentials(self, connection_id: str, *, old: str, new: str) -> bool:
        pending = self.documents[connection_id].connection.pending_reconnect
        if pending is None or pending.credentials_ciphertext != old:
            return False
        self._update(
            connection_id, pending_reconnect=pending.model_copy(update={"credentials_ciphertext": new})
        )
        return True


class InMemoryOAuthStates:
    def __init__(self) -> None:
        self.grants: dict[str, OAuthGrant] = {}

    async def save(self, grant: OAuthGrant) -> None:
        self.grants[grant.state_digest] = grant

    async def consume(self, state_digest: str, now: datetime) -> OAuthGrant | None:
        grant = self.grants.pop(state_digest, None)
        return grant if grant is not None and grant.expires_at > now else None

    async def discard_for(self, connection_id: str) -> None:
        self.grants = {k: g for k, g in self.grants.items() if g.connection_id != connection_id}


class InMemoryOnboardingLinks:
    def __init__(self) -> None:
        self.used: dict[str, datetime] = {}

    async def claim(self, link_id: str, expires_at: datetime) -> bool:
        if link_id in self.used:
            return False
        self.used[link_id] = expires_at
        return True


class FakeStripe:
    def __init__(self) -> None:
        self.accounts = {STRIPE_KEY: STRIPE_ACCOUNT, STRIPE_RESTRICTED_KEY: STRIPE_ACCOUNT}
        self.unreadable: list[str] = []
        self.refusal: ConnectionRefused | None = None
        self.authorizations: dict[str, StripeAuthorization] = {}
        self.exchange_refusal: ConnectionRefused | None = None
        self.calls: list[str] = []
        #: Accounts that granted our platform access (a code was exchanged), until revoked.
        self.grants: set[str] = set()
        self.deauthorize_unavailable = False
        #: Accounts whose revocation Stripe keeps refusing (a 5xx for them alone).
        self.deauthorize_failing: set[str] = set()

    def grant(self, code: str, stripe_user_id: str = STRIPE_ACCOUNT, scope: str = "read_write") -> None:
        self.authorizations[code] = StripeAuthorization(
            stripe_user_id, "sk_test_oauthAccessToken0001", "rt_test_refresh0001", scope
        )

    async def account_of(self, key: StripeApiKey) -> str:
        self.calls.append("account")
        if self.refusal is not None:
            raise self.refusal
        if key.reveal() not in self.accounts:
            raise ConnectionRefused(RefusalCode.KEY_REJECTED, "Stripe did not accept this key.")
        return self.accounts[key.reveal()]

    async def unreadable_resources(self, key: StripeApiKey, resources: Sequence[str]) -> list[str]:
        self.calls.extend(resources)
        return [r for r in resources if r in self.unreadable]

    async def deauthorize(self, stripe_user_id: str) -> bool:
        self.calls.append("oauth/deauthorize")
        if self.deauthorize_unavailable or stripe_user_id in self.deauthorize_failing:
            raise GrantRevocationDeferred("Stripe answered 503")
        if stripe_user_id not in self.grants:
            return False
        self.grants.discard(stripe_user_id)
        return True

    async def exchange_code(self, code: str) -> StripeAuthorization:
        self.calls.append("oauth/token")
        if self.exchange_refusal is not None:
            raise self.exchange_refusal
        if code not in self.authorizations:
            raise ConnectionRefused(RefusalCode.AUTHORIZATION_FAILED, "Stripe did not accept the code.")
        authorization = self.authorizations.pop(code)
        self.grants.add(authorization.stripe_user_id)
        return authorization


class FakeChargebee:
    def __init__(self) -> None:
        self.catalog: ProductCatalog = "2.0"
        self.write_refused: str | None = None
        self.refusal: ConnectionRefused | None = None
        self.calls: list[str] = []

    async def check_access(self, site: ChargebeeSite, key: ChargebeeApiKey) -> None:
        self.calls.append(site.name)
        if self.refusal is not None:
            raise self.refusal

    async def product_catalog(self, site: ChargebeeSite, key: ChargebeeApiKey) -> ProductCatalog:
        return self.catalog

    async def write_refusal(
        self, site: ChargebeeSite, key: ChargebeeApiKey, catalog: ProductCatalog
    ) -> str | None:
        return self.write_refused


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, Event]] = []
        self.failing = False

    async def publish(self, topic: str, event: Event) -> None:
        if self.failing:
            raise ConnectionError("broker down")
        self.published.append((topic, event))

    def events(self, kind: type[Event] | None = None) -> list[Event]:
        return [e for _, e in self.published if kind is None or isinstance(e, kind)]


@dataclass
class World:
    """Dependencies over fakes, and the fakes themselves for arranging and asserting."""

    deps: Dependencies
    connections: InMemoryConnections
    oauth_states: InMemoryOAuthStates
    stripe: FakeStripe
    chargebee: FakeChargebee
    publisher: RecordingPublisher
    clock: Clock
    cipher: CredentialCipher
    private_key: PrivateKey


def build_world(*, client_id: str | None = CLIENT_ID) -> World:
    connections, states = InMemoryConnections(), InMemoryOAuthStates()
    stripe, chargebee, publisher, clock = FakeStripe(), FakeChargebee(), RecordingPublisher(), Clock()
    cipher = CredentialCipher([new_fernet_key()])
    private_key = PrivateKey.generate()
    deps = Dependencies(
        connections=connections,
        oauth_states=states,
        onboarding_links=InMemoryOnboardingLinks(),
        stripe=stripe,
        chargebee=chargebee,
        events=publisher,
        cipher=cipher,
        sealed_secrets=SealedBoxSecrets(SecretStr(base64.b64encode(bytes(private_key)).decode())),
        stripe_platform=StripeConnectPlatform(
            client_id=client_id,
            connect_base="https://connect.stripe.test",
            redirect_uri="https://connector.test/v1/oauth/stripe/callback",
            state_ttl=timedelta(minutes=10),
        ),
        clock=clock,
        return_urls=ReturnUrlPolicy.of(["app.example", "connector.test"]),
    )
    return World(deps, connections, states, stripe, chargebee, publisher, clock, cipher, private_key)


def public_key_b64(world: World) -> str:
    return base64.b64encode(bytes(world.private_key.public_key)).decode()


class RecordingSyncQueue:
    """What the webhook intake queued for the importer."""

    def __init__(self) -> None:
        self.events: list[ProcessorEventReceived] = []

    async def enqueue(self, event: ProcessorEventReceived) -> None:
        self.events.append(event)


class StripeAccountsOf:
    """The connections of a world, looked up by their Stripe account."""

    def __init__(self, world: World) -> None:
        self._world = world

    async def connection_of(self, stripe_account_id: str) -> Connection | None:
        found = [
            d.connection
            for d in self._world.connections.documents.values()
            if d.connection.processor_account_id == stripe_account_id
        ]
        return found[-1] if found else None


class SyncStatesByConnection:
    def __init__(self) -> None:
        self.states: dict[str, StoredSyncState] = {}

    async def of(self, connection_id: str) -> StoredSyncState | None:
        return self.states.get(connection_id)
