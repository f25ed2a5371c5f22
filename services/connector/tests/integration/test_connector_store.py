"""The MongoDB adapters against the real MongoDB-wire store: the rules that make races harmless."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from connector.adapters.mongo_connections import MongoConnectionStore
from connector.adapters.mongo_oauth_states import MongoOAuthStateStore
from connector.adapters.mongo_store import ensure_indexes
from connector.domain.connection import Connection, ImportStatus, LatestImport
from connector.domain.oauth import issue_state
from connector.domain.ports import AccountBusy, Outgoing
from contracts.connections import ConnectionStatus
from contracts.events import ConnectionLost, Processor, ProcessorSkipped
from contracts.topics import CONNECTIONS
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def db(mongodb_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"t_connector_store_{uuid.uuid4().hex[:10]}"
    try:
        await ensure_indexes(client[name])
        await ensure_indexes(client[name])  # starting twice (a restart, a second replica) is fine
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def skip_of(account: str, at: datetime | None = None) -> Connection:
    return Connection(
        connection_id=f"con_{uuid.uuid4().hex}",
        account_id=account,
        status=ConnectionStatus.SKIPPED,
        created_at=at or datetime.now(UTC),
    )


def skipped_event(account: str) -> Outgoing:
    return Outgoing(CONNECTIONS, ProcessorSkipped(account_id=account, disabled_features=[]))


async def test_of_many_concurrent_opens_exactly_one_is_stored(db: Any) -> None:
    store = MongoConnectionStore(db)

    results = await asyncio.gather(
        *(store.open(skip_of("acc_race"), []) for _ in range(8)), return_exceptions=True
    )

    assert sum(result is None for result in results) == 1
    assert all(isinstance(result, AccountBusy) for result in results if result is not None)
    assert await db["connections"].count_documents({"account_id": "acc_race"}) == 1


async def test_a_disconnected_connection_no_longer_blocks_a_new_one(db: Any) -> None:
    store = MongoConnectionStore(db)
    first = skip_of("acc_again")
    await store.open(first, [])

    assert await store.disconnect(
        first.connection_id, from_status=ConnectionStatus.SKIPPED, at=datetime.now(UTC)
    )
    assert not await store.disconnect(
        first.connection_id, from_status=ConnectionStatus.SKIPPED, at=datetime.now(UTC)
    )
    second = skip_of("acc_again")
    await store.open(second, [])

    active = await store.active("acc_again")
    assert active is not None
    assert active.connection_id == second.connection_id
    latest = await store.latest("acc_again")
    assert latest is not None
    assert latest.connection_id == second.connection_id


async def test_events_wait_in_the_document_until_published(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = skip_of("acc_outbox", at=datetime.now(UTC) - timedelta(minutes=1))
    event = skipped_event("acc_outbox")
    await store.open(connection, [event])

    [(connection_id, waiting)] = [
        item
        for item in await store.unpublished(queued_before=datetime.now(UTC), limit=100)
        if item[0] == connection.connection_id
    ]
    assert [o.event for o in waiting] == [event.event]
    await store.mark_published(connection_id, [str(event.event.event_id)])

    still = await store.unpublished(queued_before=datetime.now(UTC), limit=100)
    assert connection.connection_id not in {item[0] for item in still}


async def test_an_import_status_only_moves_forward(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = skip_of("acc_import").model_copy(update={"status": ConnectionStatus.CONNECTED})
    await store.open(connection, [])
    now = datetime.now(UTC)
    await store.request_import(
        connection.connection_id,
        LatestImport(import_id="imp_1", status=ImportStatus.QUEUED, requested_at=now),
        [],
    )

    assert await store.record_import("acc_import", "imp_1", status=ImportStatus.RUNNING, at=now)
    assert await store.record_import("acc_import", "imp_1", status=ImportStatus.COMPLETED, at=now)
    assert not await store.record_import("acc_import", "imp_1", status=ImportStatus.RUNNING, at=now)
    assert not await store.record_import("acc_import", "imp_other", status=ImportStatus.FAILED, at=now)

    stored = await store.get(connection.connection_id)
    assert stored is not None
    assert stored.latest_import is not None
    assert stored.latest_import.status is ImportStatus.COMPLETED


async def test_of_concurrent_import_requests_exactly_one_is_recorded(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = skip_of("acc_one_import").model_copy(update={"status": ConnectionStatus.CONNECTED})
    await store.open(connection, [])
    now = datetime.now(UTC)

    results = await asyncio.gather(
        *(
            store.request_import(
                connection.connection_id,
                LatestImport(import_id=f"imp_{n}", status=ImportStatus.QUEUED, requested_at=now),
                [],
            )
            for n in range(6)
        )
    )

    assert sorted(results) == [False] * 5 + [True]
    stored = await store.get(connection.connection_id)
    assert stored is not None
    assert stored.latest_import is not None
    winner = stored.latest_import.import_id
    assert await store.record_import("acc_one_import", winner, status=ImportStatus.RUNNING, at=now)
    assert not await store.request_import(
        connection.connection_id,
        LatestImport(import_id="imp_late", status=ImportStatus.QUEUED, requested_at=now),
        [],
    )
    assert await store.record_import("acc_one_import", winner, status=ImportStatus.COMPLETED, at=now)
    assert await store.request_import(
        connection.connection_id,
        LatestImport(import_id="imp_next", status=ImportStatus.QUEUED, requested_at=now),
        [],
    )


async def test_a_state_is_consumed_once_even_by_concurrent_callbacks(db: Any) -> None:
    states = MongoOAuthStateStore(db)
    issued = issue_state("con_1", "acc_1", datetime.now(UTC), timedelta(minutes=10))
    await states.save(issued.grant)

    grants = await asyncio.gather(
        *(states.consume(issued.grant.state_digest, datetime.now(UTC)) for _ in range(6))
    )

    [winner] = [grant for grant in grants if grant is not None]
    assert (winner.connection_id, winner.account_id) == ("con_1", "acc_1")


async def test_an_expired_state_is_refused_and_expiry_is_indexed(db: Any) -> None:
    states = MongoOAuthStateStore(db)
    issued = issue_state("con_2", "acc_2", datetime.now(UTC) - timedelta(minutes=11), timedelta(minutes=10))
    await states.save(issued.grant)

    assert await states.consume(issued.grant.state_digest, datetime.now(UTC)) is None
    indexes = await db["oauth_states"].index_information()
    assert any(index.get("expireAfterSeconds") == 0 for index in indexes.values())


async def test_credentials_are_replaced_only_if_unchanged(db: Any) -> None:
    store = MongoConnectionStore(db)
    connection = skip_of("acc_rotate").model_copy(update={"credentials_ciphertext": "old"})
    await store.open(connection, [])

    assert (connection.connection_id, "old") in [item async for item in store.stored_credentials()]
    assert not await store.replace_credentials(connection.connection_id, old="other", new="new")
    assert await store.replace_credentials(connection.connection_id, old="old", new="new")
    stored = await store.get(connection.connection_id)
    assert stored is not None
    assert stored.credentials_ciphertext == "new"


async def test_of_concurrent_loss_reports_one_moves_the_connection_and_queues_one_event(db: Any) -> None:
    store = MongoConnectionStore(db)
    now = datetime.now(UTC)
    connection = Connection(
        connection_id=f"con_{uuid.uuid4().hex}",
        account_id="acc_lost",
        processor=Processor.CHARGEBEE,
        status=ConnectionStatus.CONNECTED,
        credentials_ciphertext="ciphertext",
        created_at=now,
        connected_at=now,
    )
    await store.open(connection, [])

    def report() -> Outgoing:
        return Outgoing(
            CONNECTIONS,
            ConnectionLost(
                account_id="acc_lost",
                connection_id=connection.connection_id,
                processor=Processor.CHARGEBEE,
                reason="credentials_rejected",
            ),
        )

    results = await asyncio.gather(
        *(
            store.lose_credentials(
                connection.connection_id, reason="credentials_rejected", at=now, events=[report()]
            )
            for _ in range(6)
        )
    )

    moved = [result for result in results if result is not None]
    assert len(moved) == 1
    assert moved[0].status is ConnectionStatus.NEEDS_RECONNECT
    assert moved[0].loss_reason == "credentials_rejected"
    [(_, pending)] = await store.unpublished(queued_before=now + timedelta(seconds=1), limit=10)
    assert [type(item.event) for item in pending] == [ConnectionLost]
    # Still the account's current connection: GET shows it, DELETE finds it.
    current = await store.active("acc_lost")
    assert current is not None
    assert current.connection_id == connection.connection_id
    assert current.credentials_ciphertext == "ciphertext"
