"""A Chargebee site's real limit, learned from its answers over HTTP and kept in the store for the next
import (the fake Chargebee counts the site's requests of the past minute, as Chargebee does)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from contracts.connections import ConnectionStatus, ProcessorCredentials, StoredConnection
from contracts.events import Mode, Processor
from importer.adapters.learned_limits import LEARNED_LIMITS_COLLECTION, MongoLearnedLimitStore, RateLearner
from importer.adapters.processor_http import RetryPolicy, new_http_client
from importer.adapters.rate_budget import RATE_BUDGETS_COLLECTION, MongoRateBudget
from importer.adapters.sources import ProcessorLimits, build_source
from importer.domain.rate_learning import LearningPolicy
from importer.domain.source import PageQuery, ProcessorSource, SourceError, SourceErrorCode, Window
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sandbox.data import generate_dataset
from sandbox.fake_chargebee import create_chargebee_app
from sandbox.fake_chargebee.state import default_chargebee_sites
from sandbox.runner import chargebee_url_template
from sandbox.server import BackgroundServer

from sandbox import SAMPLE_CHARGEBEE_KEY, SAMPLE_CHARGEBEE_SITE, SandboxAdmin

ACCOUNT = f"chargebee:{SAMPLE_CHARGEBEE_SITE}"


@pytest.fixture(scope="module")
def chargebee_url() -> Iterator[str]:
    dataset = generate_dataset(customers=40)
    with BackgroundServer(create_chargebee_app(dataset, sites=default_chargebee_sites(dataset))) as server:
        yield server.url


@pytest.fixture
async def db(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        yield client[mongodb_database]
    finally:
        await client.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = new_http_client()
    yield client
    await client.aclose()


def site_limit(url: str, per_min: int) -> None:
    admin = SandboxAdmin(url)
    admin.update_settings(rate_limits_per_min={SAMPLE_CHARGEBEE_SITE: per_min}, retry_after=True)
    admin.reset_stats()


def source(
    url: str,
    db: AsyncDatabase[Any],
    http: httpx.AsyncClient,
    learner: RateLearner,
    configured_per_min: float,
    policy: RetryPolicy,
) -> ProcessorSource:
    connection = StoredConnection(
        connection_id="conn_cb",
        account_id="acct_cb",
        processor=Processor.CHARGEBEE,
        status=ConnectionStatus.CONNECTED,
        mode=Mode.TEST,
        processor_account_id=SAMPLE_CHARGEBEE_SITE,
        site=SAMPLE_CHARGEBEE_SITE,
        product_catalog="2.0",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return build_source(
        connection,
        ProcessorCredentials(api_key=SecretStr(SAMPLE_CHARGEBEE_KEY)),
        stripe_api_base="http://127.0.0.1:9",
        chargebee_url_template=chargebee_url_template(url),
        rate_budget=MongoRateBudget(db),
        http=http,
        limits=ProcessorLimits(chargebee_per_minute=configured_per_min, headroom=0.99),
        retry_policy=policy,
        learner=learner,
    )


async def test_a_site_allowing_less_is_learned_kept_and_paced_at_by_the_next_import(
    chargebee_url: str, db: AsyncDatabase[Any], http: httpx.AsyncClient
) -> None:
    site_limit(chargebee_url, 12)  # configured: 600 a minute; the site allows 12
    first = source(
        chargebee_url,
        db,
        http,
        RateLearner(MongoLearnedLimitStore(db), headroom=0.99),
        600.0,
        RetryPolicy(rate_limited_retries=0),  # the first refusal ends the walk
    )
    pages = 0
    refused: SourceError | None = None
    while refused is None:
        try:
            await first.fetch_page(PageQuery("customers", Window(), None, 1))
        except SourceError as error:
            refused = error
        else:
            pages += 1
    assert refused.code is SourceErrorCode.RATE_LIMITED
    assert pages == 12
    stored = await db[LEARNED_LIMITS_COLLECTION].find_one({"_id": ACCOUNT})
    assert stored is not None
    assert stored["per_min"] == 12.0
    # Nobody sends to the site again before its past minute has room (the shared budget waits).
    budget = await db[RATE_BUDGETS_COLLECTION].find_one({"_id": ACCOUNT})
    assert budget is not None
    assert 45_000 < budget["tat"] - datetime.now(UTC).timestamp() * 1000 <= 61_000

    # The next import (another process: a learner of its own) starts at the learned limit.
    second = RateLearner(MongoLearnedLimitStore(db), headroom=0.99)
    pace = second.account("chargebee", ACCOUNT, 600.0, beyond_configured=True)
    assert (await pace.limits()).per_s == pytest.approx(12.0 / 60 * 0.99)


async def test_a_site_allowing_more_is_discovered_and_kept(
    chargebee_url: str, db: AsyncDatabase[Any], http: httpx.AsyncClient
) -> None:
    site_limit(chargebee_url, 6000)  # configured: 120 a minute; the site allows 6,000
    quick = dataclasses.replace(LearningPolicy(), probe_every_s=1.0, min_busy_requests=2)
    learner = RateLearner(MongoLearnedLimitStore(db), headroom=0.99, policy=quick)
    walker = source(chargebee_url, db, http, learner, 120.0, RetryPolicy())
    for _ in range(4):  # four walks of the site's customers, one per page: 160 requests
        cursor = None
        while True:
            page = await walker.fetch_page(PageQuery("customers", Window(), cursor, 1))
            if (cursor := page.next_cursor) is None:
                break
    stored = await db[LEARNED_LIMITS_COLLECTION].find_one({"_id": ACCOUNT})
    assert stored is not None
    assert stored["per_min"] >= 480.0  # doubled at least twice, never refused
    assert stored["refused_at"] is None
    assert SandboxAdmin(chargebee_url).stats()["rate_limited"] == 0


async def test_replicas_sharing_a_site_lower_its_limit_to_what_they_accepted_together(
    chargebee_url: str, db: AsyncDatabase[Any], http: httpx.AsyncClient
) -> None:
    site_limit(chargebee_url, 16)  # configured: 600 a minute; the site allows 16, read by two replicas
    replicas = [
        source(
            chargebee_url,
            db,
            http,
            RateLearner(MongoLearnedLimitStore(db), headroom=0.99, refresh_s=0.0),
            600.0,
            RetryPolicy(rate_limited_retries=0),
        )
        for _ in range(2)
    ]
    accepted = 0
    refused: SourceError | None = None
    while refused is None:
        for replica in replicas:  # in turn, each reporting its count as it reads the estimate
            try:
                await replica.fetch_page(PageQuery("customers", Window(), None, 1))
            except SourceError as error:
                refused = error
                break
            accepted += 1
    assert accepted == 16
    stored = await db[LEARNED_LIMITS_COLLECTION].find_one({"_id": ACCOUNT})
    assert stored is not None
    # Not the 8 the refused replica got accepted itself: the other's count as it last reported it,
    # before its last request.
    assert stored["per_min"] in {15.0, 16.0}
    assert len(stored["senders"]) == 2
