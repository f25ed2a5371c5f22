"""The reconnect writes of the connections store against the real MongoDB-wire store: only from
``needs_reconnect``, one winner among concurrent reconnects, the request recorded for redelivery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from connector.adapters.mongo_connections import MongoConnectionStore
from connector.adapters.mongo_store import ensure_indexes
from connector.domain.connection import Connection, PendingReconnect, Reconnection
from connector.domain.ports import Outgoing
from contracts.connections import ConnectionStatus
from contracts.events import Mode, Processor, ProcessorReconnected
from contracts.topics import CONNECTIONS
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def db(mongodb_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"t_connector_reconnect_{uuid.uuid4().hex[:10]}"
    try:
        await ensure_indexes(client[name])
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def lost(store: MongoConnectionStore, db: Any) -> Connection:
    now = datetime.now(UTC)
    connection = Connection(
        connection_id=f"con_{uuid.uuid4().hex}",
        account_id=f"acc_{uuid.uuid4().hex[:8]}",
        processor=Processor.STRIPE,
        status=ConnectionStatus.CONNECTED,
        mode=Mode.TEST,
        processor_account_id="acct_1",
        credentials_ciphertext="old-ciphertext",
        created_at=now,
        connected_at=now,
    )
    await store.open(connection, [])
    await db["connections"].update_one(
        {"_id": connection.connection_id}, {"$set": {"status": ConnectionStatus.NEEDS_RECONNECT.value}}
    )
    return connection


def reconnected(connection: Connection) -> Outgoing:
    return Outgoing(
        CONNECTIONS,
        ProcessorReconnected(
            account_id=connection.account_id,
            connection_id=connection.connection_id,
            processor=Processor.STRIPE,
            mode=Mode.TEST,
            processor_account_id="acct_1",
        ),
    )


async def test_of_concurrent_reconnects_exactly_one_puts_its_credentials_in_place(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = await lost(store, db)
    request = uuid.uuid4()

    def reconnection(n: int) -> Reconnection:
        return Reconnection(
            credentials_ciphertext=f"new-{n}",
            at=datetime.now(UTC),
            write_access=True,
            request_event_id=request if n == 0 else None,
        )

    results = await asyncio.gather(
        *(
            store.reconnect(connection.connection_id, reconnection(n), [reconnected(connection)])
            for n in range(6)
        )
    )

    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    [winner] = winners
    assert winner.status is ConnectionStatus.CONNECTED
    assert winner.credentials_ciphertext is not None
    assert winner.credentials_ciphertext.startswith("new-")
    stored = await db["connections"].find_one({"_id": connection.connection_id})
    assert "old-ciphertext" not in str(stored)
    assert len(stored["outbox"]) == 1
    assert stored["active"] is True
    if winner.credentials_ciphertext == "new-0":
        assert await store.reconnected_by(request) == winner
    assert await store.reconnected_by(uuid.uuid4()) is None


async def test_a_pending_stripe_reconnect_is_kept_until_used_dropped_or_disconnected(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = await lost(store, db)
    request = uuid.uuid4()
    pending = PendingReconnect(
        credentials_ciphertext="pending-ciphertext",
        mode=Mode.TEST,
        request_event_id=request,
        requested_at=datetime.now(UTC),
    )

    assert await store.begin_reconnect(connection.connection_id, pending, [])
    waiting = await store.get(connection.connection_id)
    assert waiting is not None
    assert waiting.pending_reconnect is not None
    # The store keeps milliseconds: everything else comes back as it was given.
    assert waiting.pending_reconnect.model_dump(exclude={"requested_at"}) == pending.model_dump(
        exclude={"requested_at"}
    )
    assert waiting.credentials_ciphertext == "old-ciphertext"
    assert await store.reconnected_by(request) == waiting
    assert await store.drop_pending_reconnect(connection.connection_id)
    assert not await store.drop_pending_reconnect(connection.connection_id)

    assert await store.begin_reconnect(connection.connection_id, pending, [])
    assert await store.disconnect(
        connection.connection_id, from_status=ConnectionStatus.NEEDS_RECONNECT, at=datetime.now(UTC)
    )
    gone = await db["connections"].find_one({"_id": connection.connection_id})
    assert "pending_reconnect" not in gone
    assert "credentials_ciphertext" not in gone
    # Nothing reconnects a disconnected connection.
    assert not await store.begin_reconnect(connection.connection_id, pending, [])
    assert (
        await store.reconnect(
            connection.connection_id,
            Reconnection(credentials_ciphertext="late", at=datetime.now(UTC), write_access=False),
            [],
        )
        is None
    )


async def test_a_refusal_of_credentials_a_reconnect_replaced_leaves_the_connection_connected(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = await lost(store, db)
    first = await store.get(connection.connection_id)
    assert first is not None
    assert first.credentials_version == 0
    back = await store.reconnect(
        connection.connection_id,
        Reconnection(credentials_ciphertext="new-key", at=datetime.now(UTC), write_access=True),
        [reconnected(connection)],
    )
    assert back is not None
    assert back.credentials_version == 1

    # A replica still holding the connect's credentials saw a 401: those are gone already.
    stale = await store.lose_credentials(
        connection.connection_id,
        reason="credentials_rejected",
        at=datetime.now(UTC),
        events=[],
        credentials_version=0,
    )

    assert stale is None
    kept = await db["connections"].find_one({"_id": connection.connection_id})
    assert (kept["status"], kept["credentials_ciphertext"]) == (ConnectionStatus.CONNECTED.value, "new-key")
    # The reconnected credentials refused: that is a loss.
    lost_again = await store.lose_credentials(
        connection.connection_id,
        reason="credentials_rejected",
        at=datetime.now(UTC),
        events=[],
        credentials_version=1,
    )
    assert lost_again is not None
    assert lost_again.status is ConnectionStatus.NEEDS_RECONNECT


async def test_a_refusal_of_the_connect_credentials_is_a_loss(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = await lost(store, db)
    await db["connections"].update_one(
        {"_id": connection.connection_id}, {"$set": {"status": ConnectionStatus.CONNECTED.value}}
    )

    moved = await store.lose_credentials(
        connection.connection_id,
        reason="credentials_rejected",
        at=datetime.now(UTC),
        events=[],
        credentials_version=0,
    )

    assert moved is not None
    assert moved.status is ConnectionStatus.NEEDS_RECONNECT
