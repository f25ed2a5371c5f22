"""Stripe and Chargebee sources against the fake processors over real HTTP.

Pages are walked to the end and compared with the fake's own data: every object exactly once,
across windows that cut through objects sharing a timestamp; errors map to the codes users see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx
import pytest
from contracts.connections import ConnectionStatus, ProcessorCredentials, StoredConnection
from contracts.events import Mode, Processor
from importer.adapters.processor_http import RetryPolicy, new_http_client
from importer.adapters.rate_budget import LocalRateBudget
from importer.adapters.sources import ProcessorLimits, build_source
from importer.domain.normalize import normalizer_for
from importer.domain.resources import resources_for, time_field
from importer.domain.source import (
    FetchedPage,
    NormalizationContext,
    PageQuery,
    ProcessorSource,
    SourceError,
    SourceErrorCode,
    Window,
)
from pydantic import SecretStr
from sandbox.client import SandboxAdmin
from sandbox.data import Dataset

from sandbox import config as cfg


class Fakes(Protocol):
    """The ``fakes`` fixture of this package's conftest."""

    dataset: Dataset
    stripe_url: str
    chargebee_url: str

    @property
    def chargebee_url_template(self) -> str: ...


FAST = ProcessorLimits(stripe_test_per_s=1000, stripe_test_endpoint_per_s=1000, chargebee_per_minute=60_000)
QUICK_RETRIES = RetryPolicy(backoff_base_s=0.01, backoff_cap_s=0.05, rate_limit_window_s=0.05)

SourceFactory = Callable[..., ProcessorSource]


def connection(
    processor: Processor, *, site: str | None = None, catalog: Literal["1.0", "2.0"] | None = None
) -> StoredConnection:
    return StoredConnection(
        connection_id="conn_1",
        account_id="acct_42",
        processor=processor,
        status=ConnectionStatus.CONNECTED,
        mode=Mode.TEST,
        processor_account_id=cfg.SAMPLE_STRIPE_ACCOUNT_ID if processor is Processor.STRIPE else site,
        site=site,
        product_catalog=catalog,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = new_http_client()
    yield client
    await client.aclose()


@pytest.fixture
def stripe_source(fakes: Fakes, http: httpx.AsyncClient) -> Callable[..., ProcessorSource]:
    def build(key: str = cfg.SAMPLE_STRIPE_KEY) -> ProcessorSource:
        return build_source(
            connection(Processor.STRIPE),
            ProcessorCredentials(api_key=SecretStr(key)),
            stripe_api_base=fakes.stripe_url,
            chargebee_url_template=fakes.chargebee_url_template,
            rate_budget=LocalRateBudget(),
            http=http,
            limits=FAST,
            retry_policy=QUICK_RETRIES,
        )

    return build


@pytest.fixture
def chargebee_source(fakes: Fakes, http: httpx.AsyncClient) -> Callable[..., ProcessorSource]:
    def build(
        site: str = cfg.SAMPLE_CHARGEBEE_SITE,
        key: str = cfg.SAMPLE_CHARGEBEE_KEY,
        catalog: Literal["1.0", "2.0"] = "2.0",
    ) -> ProcessorSource:
        return build_source(
            connection(Processor.CHARGEBEE, site=site, catalog=catalog),
            ProcessorCredentials(api_key=SecretStr(key)),
            stripe_api_base=fakes.stripe_url,
            chargebee_url_template=fakes.chargebee_url_template,
            rate_budget=LocalRateBudget(),
            http=http,
            limits=FAST,
            retry_policy=QUICK_RETRIES,
        )

    return build


@pytest.fixture
def stripe_admin(fakes: Fakes) -> SandboxAdmin:
    admin = SandboxAdmin(fakes.stripe_url)
    admin.clear_faults()
    return admin


@pytest.fixture
def chargebee_admin(fakes: Fakes) -> SandboxAdmin:
    admin = SandboxAdmin(fakes.chargebee_url)
    admin.clear_faults()
    return admin


async def walk(
    source: ProcessorSource, resource: str, window: Window | None = None, limit: int = 7
) -> tuple[list[dict[str, Any]], list[FetchedPage]]:
    """Every object of a window, page by page, as the source serves them."""
    window = window or Window()
    objects: list[dict[str, Any]] = []
    pages: list[FetchedPage] = []
    cursor: str | None = None
    while True:
        page = await source.fetch_page(PageQuery(resource, window, cursor, limit))
        pages.append(page)
        objects.extend(dict(o) for o in page.objects)
        if page.next_cursor is None:
            return objects, pages
        cursor = page.next_cursor


def ties(objects: list[dict[str, Any]], field: str) -> list[int]:
    """Timestamps at least two objects share, oldest first."""
    counts = Counter(o[field] for o in objects)
    shared = sorted(int(value) for value, count in counts.items() if count >= 2)
    assert shared, "the sample data should hold objects sharing a timestamp"
    return shared


# --- Stripe ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", resources_for(Processor.STRIPE))
async def test_stripe_serves_every_object_once_newest_first(
    stripe_source: SourceFactory, fakes: Fakes, resource: str
) -> None:
    source = stripe_source()

    objects, pages = await walk(source, resource)

    expected = [o["id"] for o in fakes.dataset.stripe[resource]]
    assert [o["id"] for o in objects] == expected  # newest first, as the fake stores them
    created = [o["created"] for o in objects]
    assert created == sorted(created, reverse=True)
    assert all(p.first_created == p.objects[0]["created"] for p in pages if p.objects)


async def test_stripe_subscriptions_include_cancelled_ones_with_their_discounts(
    stripe_source: SourceFactory,
) -> None:
    objects, _ = await walk(stripe_source(), "subscriptions", limit=100)

    assert {"canceled", "active", "trialing"} <= {o["status"] for o in objects}
    with_discount = [o for o in objects if o["discounts"]]
    assert with_discount
    assert all(isinstance(d, dict) and d["coupon"]["id"] for o in with_discount for d in o["discounts"])
    records = [
        r
        for o in objects
        for r in normalizer_for(Processor.STRIPE).normalize("subscriptions", o, NormalizationContext("acct"))
    ]
    assert any(r.discounts and r.mrr > 0 for r in records)  # type: ignore[attr-defined]


async def test_stripe_windows_split_ties_exactly(stripe_source: SourceFactory, fakes: Fakes) -> None:
    source = stripe_source()
    boundary = ties(fakes.dataset.stripe["customers"], "created")[0]

    older, _ = await walk(source, "customers", Window(None, boundary))
    newer, _ = await walk(source, "customers", Window(boundary, None))

    assert all(o["created"] < boundary for o in older)
    assert all(o["created"] >= boundary for o in newer)
    ids = [o["id"] for o in older + newer]
    assert sorted(ids) == sorted(o["id"] for o in fakes.dataset.stripe["customers"])
    assert (await source.fetch_page(PageQuery("customers", Window(boundary, boundary)))).objects == []


async def test_stripe_errors_users_see(stripe_source: SourceFactory) -> None:
    with pytest.raises(SourceError) as forbidden:
        await stripe_source(cfg.SAMPLE_STRIPE_LIMITED_KEY).fetch_page(PageQuery("invoices"))
    with pytest.raises(SourceError) as rejected:
        await stripe_source("sk_test_51ThisKeyDoesNotExist0000000000000000000000").fetch_page(
            PageQuery("customers")
        )
    with pytest.raises(SourceError) as unknown:
        await stripe_source().fetch_page(PageQuery("charges"))

    assert (forbidden.value.code, forbidden.value.retryable) == (
        SourceErrorCode.INSUFFICIENT_PERMISSIONS,
        False,
    )
    assert (rejected.value.code, rejected.value.retryable) == (SourceErrorCode.KEY_REJECTED, False)
    assert "ThisKeyDoesNotExist" not in str(rejected.value)
    assert (unknown.value.code, unknown.value.retryable) == (SourceErrorCode.INVALID_REQUEST, False)


async def test_stripe_outages_are_retried(stripe_source: SourceFactory, stripe_admin: SandboxAdmin) -> None:
    stripe_admin.add_fault("/v1/customers", status=503, count=2)
    stripe_admin.add_fault("/v1/prices", close_connection=True)
    stripe_admin.add_fault(
        "/v1/plans", status=429, retry_after_s=0, headers={"Stripe-Rate-Limited-Reason": "endpoint-rate"}
    )
    source = stripe_source()

    customers = await source.fetch_page(PageQuery("customers"))
    prices = await source.fetch_page(PageQuery("prices"))
    plans = await source.fetch_page(PageQuery("plans"))

    assert customers.objects
    assert prices.objects
    assert plans.objects
    assert all(fault["remaining"] == 0 for fault in stripe_admin.faults())


async def test_stripe_should_retry_false_is_not_retried(
    stripe_source: SourceFactory, stripe_admin: SandboxAdmin
) -> None:
    stripe_admin.add_fault("/v1/coupons", status=500, should_retry=False, count=5)

    with pytest.raises(SourceError) as raised:
        await stripe_source().fetch_page(PageQuery("coupons"))

    assert (raised.value.code, raised.value.retryable) == (SourceErrorCode.PROCESSOR_UNAVAILABLE, False)
    [fault] = stripe_admin.faults()
    assert fault["served"] == 1


async def test_a_lasting_outage_becomes_a_retryable_error(
    stripe_source: SourceFactory, stripe_admin: SandboxAdmin
) -> None:
    stripe_admin.add_fault("/v1/invoices", status=502, count=50)

    with pytest.raises(SourceError) as raised:
        await stripe_source().fetch_page(PageQuery("invoices"))

    assert (raised.value.code, raised.value.retryable) == (SourceErrorCode.PROCESSOR_UNAVAILABLE, True)
    [fault] = stripe_admin.faults()
    assert fault["served"] == QUICK_RETRIES.transient_retries + 1


# --- Chargebee -------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", resources_for(Processor.CHARGEBEE, "2.0"))
async def test_chargebee_serves_every_object_once_oldest_first(
    chargebee_source: SourceFactory, fakes: Fakes, resource: str
) -> None:
    source = chargebee_source()

    objects, pages = await walk(source, resource)

    listed = [o for o in fakes.dataset.chargebee[resource] if not o.get("deleted")]
    assert sorted(o["id"] for o in objects) == sorted(o["id"] for o in listed)
    assert len(objects) == len({o["id"] for o in objects})
    field = time_field(Processor.CHARGEBEE, resource)
    if resource in ("customers", "subscriptions", "invoices", "coupons"):
        times = [o[field] for o in objects]
        assert times == sorted(times)
        assert all(p.last_created == p.objects[-1][field] for p in pages if p.objects)


@pytest.mark.parametrize(
    ("resource", "field"),
    [("customers", "created_at"), ("invoices", "date"), ("subscriptions", "created_at")],
)
async def test_chargebee_windows_split_ties_exactly(
    chargebee_source: SourceFactory, fakes: Fakes, resource: str, field: str
) -> None:
    source = chargebee_source()
    listed = [o for o in fakes.dataset.chargebee[resource] if not o.get("deleted")]
    shared = ties(listed, field)
    # Both bounds of the middle window fall on instants several objects share.
    boundary, later = shared[0], shared[-1] if len(shared) > 1 else shared[0] + 86_400

    older, _ = await walk(source, resource, Window(None, boundary))
    middle, _ = await walk(source, resource, Window(boundary, later))
    newer, _ = await walk(source, resource, Window(later, None))

    assert all(o[field] < boundary for o in older)
    assert all(boundary <= o[field] < later for o in middle)
    assert any(o[field] == boundary for o in middle)
    assert all(o[field] >= later for o in newer)
    ids = [o["id"] for o in older + middle + newer]
    assert sorted(ids) == sorted(o["id"] for o in listed)


async def test_chargebee_subscriptions_keep_cancelled_and_non_renewing(
    chargebee_source: SourceFactory,
) -> None:
    objects, _ = await walk(chargebee_source(), "subscriptions", limit=100)

    statuses = {o["status"] for o in objects}
    assert {"cancelled", "active", "non_renewing", "in_trial"} <= statuses
    assert all("customer_id" in o and "subscription_items" in o for o in objects)


async def test_chargebee_product_catalog_1(chargebee_source: SourceFactory) -> None:
    source = chargebee_source(cfg.SAMPLE_CHARGEBEE_PC1_SITE, cfg.SAMPLE_CHARGEBEE_PC1_KEY, "1.0")

    plans, _ = await walk(source, "plans")
    addons, _ = await walk(source, "addons", Window(None, 2_000_000_000))  # read whole, whatever the window
    subscriptions, _ = await walk(source, "subscriptions")

    assert source.resources() == ("customers", "subscriptions", "invoices", "coupons", "plans", "addons")
    assert plans
    assert addons
    assert all("plan_id" in s for s in subscriptions)
    normalizer = normalizer_for(Processor.CHARGEBEE)
    assert all(normalizer.normalize("plans", p, NormalizationContext("acct")) for p in plans)


async def test_chargebee_errors_users_see(chargebee_source: SourceFactory) -> None:
    failures: dict[str, SourceError] = {}
    attempts = {
        "restricted": chargebee_source(key=cfg.SAMPLE_CHARGEBEE_RESTRICTED_KEY),
        "wrong_key": chargebee_source(key="test_NotTheKey00000000000000000000000000"),
        "no_site": chargebee_source(site="no-such-site-test"),
        "blocked": chargebee_source(
            site=cfg.SAMPLE_CHARGEBEE_BLOCKED_SITE, key=cfg.SAMPLE_CHARGEBEE_BLOCKED_KEY
        ),
    }
    for name, source in attempts.items():
        with pytest.raises(SourceError) as raised:
            await source.fetch_page(PageQuery("invoices"))
        failures[name] = raised.value

    assert failures["restricted"].code is SourceErrorCode.INSUFFICIENT_PERMISSIONS
    assert failures["wrong_key"].code is SourceErrorCode.KEY_REJECTED
    assert failures["no_site"].code is SourceErrorCode.SITE_NOT_FOUND
    assert failures["blocked"].code is SourceErrorCode.INSUFFICIENT_PERMISSIONS
    assert not any(f.retryable for f in failures.values())


async def test_chargebee_rate_limit_is_waited_out(
    chargebee_source: SourceFactory, chargebee_admin: SandboxAdmin
) -> None:
    chargebee_admin.add_fault("/customers", status=429, retry_after_s=0, count=2)
    chargebee_admin.add_fault("/coupons", status=500)

    customers = await chargebee_source().fetch_page(PageQuery("customers"))
    coupons = await chargebee_source().fetch_page(PageQuery("coupons"))

    assert customers.objects
    assert coupons.objects
    assert all(fault["remaining"] == 0 for fault in chargebee_admin.faults())
