"""A Stripe connection left awaiting its OAuth authorization expires on the real store: its key is
destroyed, it ends, and its state no longer works; time is injected, never slept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import pytest_asyncio
from connector.adapters.mongo_connections import MongoConnectionStore
from connector.adapters.mongo_oauth_states import MongoOAuthStateStore
from connector.adapters.mongo_store import ensure_indexes
from connector.domain.connection import Connection, PendingReconnect
from connector.domain.oauth import StripeConnectPlatform, issue_state
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.authorize_stripe import StripeCallback, complete_stripe_authorization
from connector.service.dependencies import Dependencies
from connector.service.expire_pending import expire_pending_authorizations
from connector.service.rotate_credentials import rotate_credentials
from contracts.connections import ConnectionStatus, CredentialCipher, ProcessorCredentials
from contracts.events import Event, Mode, Processor, ProcessorDisconnected
from cryptography.fernet import Fernet
from pydantic import SecretStr
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

CREATED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = CREATED_AT

    def __call__(self) -> datetime:
        return self.now


class _Events:
    def __init__(self) -> None:
        self.published: list[Event] = []

    async def publish(self, topic: str, event: Event) -> None:
        self.published.append(event)


@pytest_asyncio.fixture(loop_scope="session")
async def db(mongodb_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"t_pending_expiry_{uuid.uuid4().hex[:10]}"
    try:
        await ensure_indexes(client[name])
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def dependencies(db: Any, clock: _Clock, events: _Events) -> Dependencies:
    # Only the store, the clock and the publisher are used; the processors are never reached.
    return Dependencies(
        connections=MongoConnectionStore(db),
        oauth_states=MongoOAuthStateStore(db),
        stripe=cast(Any, None),
        chargebee=cast(Any, None),
        events=events,
        cipher=CredentialCipher.from_setting(Fernet.generate_key().decode()),
        sealed_secrets=cast(Any, None),
        stripe_platform=StripeConnectPlatform(
            client_id="ca_test",
            connect_base="http://127.0.0.1:9",
            redirect_uri="http://127.0.0.1:9/v1/oauth/stripe/callback",
            state_ttl=timedelta(days=3),
        ),
        onboarding_links=cast(Any, None),
        clock=clock,
        pending_authorization_ttl=timedelta(hours=24),
    )


async def pending(deps: Dependencies, account_id: str) -> tuple[str, str]:
    """A pending Stripe connection as ``connect_stripe`` leaves it; its id and OAuth state."""
    connection_id = f"con_{uuid.uuid4().hex}"
    # A state living longer than the pending connection: only the expiry can stop it.
    issued = issue_state(connection_id, account_id, CREATED_AT, timedelta(days=3))
    await deps.connections.open(
        Connection(
            connection_id=connection_id,
            account_id=account_id,
            processor=Processor.STRIPE,
            status=ConnectionStatus.AWAITING_AUTHORIZATION,
            mode=Mode.TEST,
            processor_account_id="acct_1Pending",
            contact_email="owner@example.com",
            credentials_ciphertext="gAAAA-not-a-real-token",
            created_at=CREATED_AT,
        ),
        [],
    )
    await deps.oauth_states.save(issued.grant)
    return connection_id, issued.state


async def test_a_pending_authorization_expires_after_its_time_and_not_before(db: Any) -> None:
    clock, events = _Clock(), _Events()
    deps = dependencies(db, clock, events)
    account_id = f"acc_{uuid.uuid4().hex[:8]}"
    connection_id, state = await pending(deps, account_id)
    connected_id = f"con_{uuid.uuid4().hex}"
    await deps.connections.open(
        Connection(
            connection_id=connected_id,
            account_id=f"acc_{uuid.uuid4().hex[:8]}",
            processor=Processor.STRIPE,
            status=ConnectionStatus.CONNECTED,
            mode=Mode.TEST,
            credentials_ciphertext="gAAAA-connected",
            created_at=CREATED_AT - timedelta(days=30),
        ),
        [],
    )

    clock.now = CREATED_AT + timedelta(hours=23, minutes=59)
    assert await expire_pending_authorizations(deps) == 0
    still = await deps.connections.get(connection_id)
    assert still is not None
    assert still.status is ConnectionStatus.AWAITING_AUTHORIZATION

    clock.now = CREATED_AT + timedelta(hours=24, seconds=1)
    assert await expire_pending_authorizations(deps) == 1
    assert await expire_pending_authorizations(deps) == 0

    document = await db.connections.find_one({"_id": connection_id})
    assert document["status"] == ConnectionStatus.DISCONNECTED.value
    assert "credentials_ciphertext" not in document
    assert document["active"] is False
    assert document["outbox"] == []
    [gone] = events.published
    assert isinstance(gone, ProcessorDisconnected)
    assert (gone.account_id, gone.connection_id, gone.erase) == (account_id, connection_id, False)
    assert await deps.connections.active(account_id) is None
    # The browser coming back late: the state no longer works.
    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(deps, StripeCallback(state=state, code="ac_late"))
    assert refused.value.code is RefusalCode.INVALID_STATE
    # Other connections are left alone.
    other = await deps.connections.get(connected_id)
    assert other is not None
    assert other.status is ConnectionStatus.CONNECTED
    assert other.credentials_ciphertext == "gAAAA-connected"


async def waiting_reconnect(deps: Dependencies, account_id: str, ciphertext: str) -> tuple[str, str]:
    """A lost Stripe connection whose reconnect waits for its OAuth callback; its id and state."""
    connection_id = f"con_{uuid.uuid4().hex}"
    await deps.connections.open(
        Connection(
            connection_id=connection_id,
            account_id=account_id,
            processor=Processor.STRIPE,
            status=ConnectionStatus.NEEDS_RECONNECT,
            mode=Mode.TEST,
            processor_account_id="acct_1Lost",
            contact_email="owner@example.com",
            credentials_ciphertext="gAAAA-lost",
            created_at=CREATED_AT - timedelta(days=30),
            connected_at=CREATED_AT - timedelta(days=30),
        ),
        [],
    )
    pending = PendingReconnect(credentials_ciphertext=ciphertext, mode=Mode.TEST, requested_at=CREATED_AT)
    assert await deps.connections.begin_reconnect(connection_id, pending, [])
    issued = issue_state(connection_id, account_id, CREATED_AT, timedelta(days=3))
    await deps.oauth_states.save(issued.grant)
    return connection_id, issued.state


async def test_a_pending_reconnect_key_expires_and_the_connection_stays_needs_reconnect(db: Any) -> None:
    clock, events = _Clock(), _Events()
    deps = dependencies(db, clock, events)
    account_id = f"acc_{uuid.uuid4().hex[:8]}"
    connection_id, state = await waiting_reconnect(deps, account_id, "gAAAA-pending-key")

    clock.now = CREATED_AT + timedelta(hours=23, minutes=59)
    assert await expire_pending_authorizations(deps) == 0
    kept = await db.connections.find_one({"_id": connection_id})
    assert kept["pending_reconnect"]["credentials_ciphertext"] == "gAAAA-pending-key"

    clock.now = CREATED_AT + timedelta(hours=24, seconds=1)
    assert await expire_pending_authorizations(deps) == 1
    assert await expire_pending_authorizations(deps) == 0

    document = await db.connections.find_one({"_id": connection_id})
    assert "pending_reconnect" not in document
    assert "gAAAA-pending-key" not in str(document)
    assert (document["status"], document["active"]) == (ConnectionStatus.NEEDS_RECONNECT.value, True)
    assert document["credentials_ciphertext"] == "gAAAA-lost"
    assert events.published == []
    # The browser coming back late: the state no longer works, the connection is as it was.
    with pytest.raises(ConnectionRefused) as refused:
        await complete_stripe_authorization(deps, StripeCallback(state=state, code="ac_late"))
    assert refused.value.code is RefusalCode.INVALID_STATE
    still = await deps.connections.get(connection_id)
    assert still is not None
    assert still.status is ConnectionStatus.NEEDS_RECONNECT


async def test_a_reconnect_begun_again_keeps_its_new_key(db: Any) -> None:
    clock, events = _Clock(), _Events()
    deps = dependencies(db, clock, events)
    connection_id, _ = await waiting_reconnect(deps, f"acc_{uuid.uuid4().hex[:8]}", "gAAAA-first")
    [old] = await deps.connections.pending_reconnects_since(CREATED_AT + timedelta(seconds=1), limit=1000)
    again = PendingReconnect(
        credentials_ciphertext="gAAAA-second", mode=Mode.TEST, requested_at=CREATED_AT + timedelta(days=1)
    )
    assert await deps.connections.begin_reconnect(connection_id, again, [])

    # The expiry read the first one before it was replaced: its conditional write misses.
    assert not await deps.connections.drop_pending_reconnect(connection_id, ciphertext="gAAAA-first")

    document = await db.connections.find_one({"_id": connection_id})
    assert document["pending_reconnect"]["credentials_ciphertext"] == "gAAAA-second"
    assert old.connection_id == connection_id


async def test_rotation_re_encrypts_a_pending_reconnect_key(db: Any) -> None:
    clock, events = _Clock(), _Events()
    deps = dependencies(db, clock, events)
    old_key, newest = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_cipher = CredentialCipher([old_key])
    secret = ProcessorCredentials(api_key=SecretStr("sk_test_pending"))
    connection_id, _ = await waiting_reconnect(
        deps, f"acc_{uuid.uuid4().hex[:8]}", old_cipher.encrypt(secret)
    )
    await db.connections.update_one(
        {"_id": connection_id}, {"$set": {"credentials_ciphertext": old_cipher.encrypt(secret)}}
    )

    report = await rotate_credentials(
        deps.connections, CredentialCipher([newest, old_key]), CredentialCipher([newest])
    )

    document = await db.connections.find_one({"_id": connection_id})
    only_newest = CredentialCipher([newest])
    pending = only_newest.decrypt(document["pending_reconnect"]["credentials_ciphertext"])
    assert pending.api_key.get_secret_value() == "sk_test_pending"
    assert only_newest.decrypt(document["credentials_ciphertext"]) == secret
    assert report.complete
    assert report.rotated >= 2
