"""Decrypted credentials leave the importer's memory: on expiry, unasked, and at once on disconnect."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from contracts.connections import (
    ConnectionStatus,
    CredentialCipher,
    ProcessorCredentials,
    StoredConnection,
)
from contracts.events import Mode, Processor
from cryptography.fernet import Fernet
from importer.adapters.connection_credentials import ProcessorAccess
from importer.adapters.connection_sources import ConnectionSourceProvider
from importer.adapters.rate_budget import LocalRateBudget
from importer.adapters.sync_readers import ConnectionSyncReaders
from importer.domain.model import ImportJob
from importer.domain.ports import SourceUnavailable
from importer.domain.source import FetchedPage, PageQuery
from pydantic import SecretStr

CIPHER = CredentialCipher([Fernet.generate_key().decode()])
TTL_S = 0.05


class ConnectionsCollection:
    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        return self.documents.get(query["_id"])


class ClosableSource:
    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.closed = False

    def resources(self) -> list[str]:
        return []

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        raise AssertionError("not read in these tests")

    async def aclose(self) -> None:
        self.closed = True


def connection(connection_id: str) -> dict[str, Any]:
    return {
        "_id": connection_id,
        "account_id": "acct_1",
        "processor": Processor.CHARGEBEE.value,
        "status": ConnectionStatus.CONNECTED.value,
        "mode": Mode.TEST.value,
        "site": "acme-test",
        "credentials_ciphertext": CIPHER.encrypt(ProcessorCredentials(api_key=SecretStr("test_" + "k" * 24))),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }


def job(connection_id: str) -> ImportJob:
    """Only the connection and account of a job are read to find its source."""
    return cast(ImportJob, SimpleNamespace(connection_id=connection_id, account_id="acct_1"))


def access(collection: ConnectionsCollection) -> ProcessorAccess:
    return ProcessorAccess(
        {"connections": collection},  # type: ignore[arg-type]
        CIPHER,
        stripe_api_base="http://stripe.invalid",
        chargebee_url_template="http://{site}.chargebee.invalid/api/v2",
        rate_budget=LocalRateBudget(),
        http=httpx.AsyncClient(),
    )


def provider(collection: ConnectionsCollection, built: list[ClosableSource]) -> ConnectionSourceProvider:
    def builder(stored: StoredConnection, credentials: ProcessorCredentials) -> Any:
        source = ClosableSource(stored.connection_id)
        built.append(source)
        return source

    return ConnectionSourceProvider(access(collection), ttl_s=TTL_S, builder=builder)


async def test_a_source_is_shared_while_fresh_then_dropped_unasked_and_closed() -> None:
    collection, built = ConnectionsCollection(), list[ClosableSource]()
    collection.documents["conn_1"] = connection("conn_1")
    sources = provider(collection, built)

    first = await sources.source_for(job("conn_1"))
    assert await sources.source_for(job("conn_1")) is first
    assert sources.cached_connections == {"conn_1"}

    await asyncio.sleep(TTL_S * 1.5)
    assert sources.cached_connections == frozenset()
    await asyncio.sleep(TTL_S * 1.5)
    assert [source.closed for source in built] == [True]


async def test_many_connections_do_not_accumulate() -> None:
    collection, built = ConnectionsCollection(), list[ClosableSource]()
    for index in range(50):
        collection.documents[f"conn_{index}"] = connection(f"conn_{index}")
    sources = provider(collection, built)

    for index in range(50):
        await sources.source_for(job(f"conn_{index}"))
    assert len(sources.cached_connections) == 50

    # Evicted a few TTLs later: waited for up to 5 s, since a busy machine may run the eviction late.
    for _ in range(100):
        await asyncio.sleep(TTL_S)
        if not sources.cached_connections and all(source.closed for source in built):
            break
    assert sources.cached_connections == frozenset()
    assert all(source.closed for source in built)


async def test_a_disconnected_connection_is_forgotten_at_once_and_read_again_from_the_store() -> None:
    collection, built = ConnectionsCollection(), list[ClosableSource]()
    collection.documents["conn_1"] = connection("conn_1")
    sources = provider(collection, built)
    await sources.source_for(job("conn_1"))

    sources.forget("conn_1")

    assert sources.cached_connections == frozenset()
    collection.documents["conn_1"] = {**connection("conn_1"), "credentials_ciphertext": None}
    with pytest.raises(SourceUnavailable):  # the destroyed credentials are not served from memory
        await sources.source_for(job("conn_1"))
    await asyncio.sleep(TTL_S * 1.5)
    assert [source.closed for source in built] == [True]


async def test_sync_readers_let_go_of_credentials_the_same_way() -> None:
    collection = ConnectionsCollection()
    collection.documents["conn_1"] = connection("conn_1")
    collection.documents["conn_2"] = connection("conn_2")
    readers = ConnectionSyncReaders(access(collection), ttl_s=TTL_S)

    first = await readers.reader_for("conn_1", "acct_1")
    assert await readers.reader_for("conn_1", "acct_1") is first
    await readers.reader_for("conn_2", "acct_1")
    readers.forget("conn_2")
    assert readers.cached_connections == {"conn_1"}

    await asyncio.sleep(TTL_S * 1.5)
    assert readers.cached_connections == frozenset()
    with pytest.raises(SourceUnavailable):
        await readers.reader_for("conn_1", "acct_other")
