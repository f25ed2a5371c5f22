"""An import's source on the real store: a 401 to credentials a reconnect has replaced since is told
apart from a loss by the stored ``credentials_version``, and the stale source is dropped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from contracts.connections import ConnectionStatus, CredentialCipher, ProcessorCredentials, StoredConnection
from contracts.events import Mode, Processor
from cryptography.fernet import Fernet
from importer.adapters.connection_credentials import ProcessorAccess
from importer.adapters.connection_sources import ConnectionSourceProvider
from importer.adapters.rate_budget import LocalRateBudget
from importer.domain.model import ImportJob
from importer.domain.source import FetchedPage, PageQuery
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = [pytest.mark.infra]

CIPHER = CredentialCipher([Fernet.generate_key().decode()])


@pytest_asyncio.fixture
async def database(mongodb_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    name = f"t_import_source_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


class Source:
    def resources(self) -> list[str]:
        return []

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        raise AssertionError("not read here")

    async def aclose(self) -> None:
        return None


async def test_only_credentials_newer_than_the_refused_ones_drop_the_source(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    connection_id = f"con_{uuid.uuid4().hex[:8]}"
    await database.connections.insert_one(
        {
            "_id": connection_id,
            "account_id": "acc_1",
            "processor": Processor.CHARGEBEE.value,
            "status": ConnectionStatus.CONNECTED.value,
            "mode": Mode.TEST.value,
            "site": "acme-test",
            "credentials_ciphertext": CIPHER.encrypt(
                ProcessorCredentials(api_key=SecretStr("test_" + "k" * 24))
            ),
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )
    versions: list[int] = []

    def builder(stored: StoredConnection, credentials: ProcessorCredentials) -> Any:
        versions.append(stored.credentials_version)
        return Source()

    access = ProcessorAccess(
        database,
        CIPHER,
        stripe_api_base="http://stripe.invalid",
        chargebee_url_template="http://{site}.chargebee.invalid/api/v2",
        rate_budget=LocalRateBudget(),
        http=httpx.AsyncClient(),
    )
    sources = ConnectionSourceProvider(access, builder=builder)
    job = cast(ImportJob, SimpleNamespace(connection_id=connection_id, account_id="acc_1"))
    await sources.source_for(job)

    # The connect's credentials refused, nothing newer stored: a loss, the source kept meanwhile.
    assert not await sources.replaced_since(job, 0)
    assert not await sources.replaced_since(job, None)
    assert sources.cached_connections == {connection_id}
    # A reconnect stores the next ones: the 401 was to the old ones, whose source goes.
    await database.connections.update_one({"_id": connection_id}, {"$inc": {"credentials_version": 1}})
    assert await sources.replaced_since(job, 0)
    assert sources.cached_connections == frozenset()
    await sources.source_for(job)
    assert versions == [0, 1]
    assert not await sources.replaced_since(job, 1)
    await sources.aclose()
