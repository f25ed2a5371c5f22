"""Sync's Stripe reader against the fake Stripe over real HTTP: an event list cut by a small cap is
read on after its last event until its end, every event once; a product's prices and plans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import pytest
from contracts.connections import ConnectionStatus, ProcessorCredentials, StoredConnection
from contracts.events import Mode, Processor
from importer.adapters.processor_http import ProcessorClient, RetryPolicy, new_http_client
from importer.adapters.rate_budget import LocalRateBudget
from importer.adapters.sources import ProcessorLimits, processor_account
from importer.adapters.stripe_source import STRIPE_API_VERSION
from importer.adapters.sync_readers import StripeSyncReader
from importer.domain.sync import ListedEvents
from pydantic import SecretStr
from sandbox.client import SandboxAdmin

from sandbox import config as cfg

FAST = ProcessorLimits(stripe_test_per_s=1000, stripe_test_endpoint_per_s=1000)


class Fakes(Protocol):
    """The ``fakes`` fixture of this package's conftest."""

    stripe_url: str


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = new_http_client()
    yield client
    await client.aclose()


@pytest.fixture
def stripe_admin(fakes: Fakes) -> Iterator[SandboxAdmin]:
    admin = SandboxAdmin(fakes.stripe_url)
    try:
        yield admin
    finally:
        admin.reset()  # the other tests compare with the fake's initial data


def reader(fakes: Fakes, http: httpx.AsyncClient, *, page_size: int, pages: int) -> StripeSyncReader:
    connection = StoredConnection(
        connection_id="conn_sync",
        account_id="acct_42",
        processor=Processor.STRIPE,
        status=ConnectionStatus.CONNECTED,
        mode=Mode.TEST,
        processor_account_id=cfg.SAMPLE_STRIPE_ACCOUNT_ID,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    account = processor_account(
        connection, ProcessorCredentials(api_key=SecretStr(cfg.SAMPLE_STRIPE_KEY)), FAST
    )
    client = ProcessorClient(
        http,
        account,
        LocalRateBudget(),
        headers={"Stripe-Version": STRIPE_API_VERSION},
        policy=RetryPolicy(backoff_base_s=0.01, backoff_cap_s=0.05, rate_limit_window_s=0.05),
    )
    return StripeSyncReader(client, fakes.stripe_url, event_page_size=page_size, event_pages=pages)


async def test_an_event_list_cut_by_the_cap_is_read_on_after_its_last_event(
    fakes: Fakes, http: httpx.AsyncClient, stripe_admin: SandboxAdmin
) -> None:
    touched = stripe_admin.touch_objects("customers", 11, mark="name")
    made = list(touched["event_ids"])
    cursor_s = int(min(touched["changed_at"]))
    capped = reader(fakes, http, page_size=2, pages=2)

    reads: list[ListedEvents] = [await capped.events_since(cursor_s)]
    while reads[-1].continue_after is not None:
        reads.append(await capped.events_since(cursor_s, after=reads[-1].continue_after))

    read = [event.event_id for listed in reads for event in listed.events]
    assert len(read) == len(set(read))  # each once
    assert set(made) <= set(read)  # none lost
    # Newest first: the first poll reads the newest four; each read goes on after the last one's.
    assert read[:4] == made[::-1][:4]
    assert [listed.complete for listed in reads] == [False] * (len(reads) - 1) + [True]
    assert [listed.continue_after for listed in reads[:-1]] == [r.events[-1].event_id for r in reads[:-1]]
    # Uncapped, one read holds them all, in the same order.
    whole = await reader(fakes, http, page_size=2, pages=100).events_since(cursor_s)
    assert (whole.complete, [event.event_id for event in whole.events]) == (True, read)


async def test_a_product_s_prices_and_plans_are_listed_by_it_with_its_name(
    fakes: Fakes, http: httpx.AsyncClient, stripe_admin: SandboxAdmin
) -> None:
    product = stripe_admin.create_object("products", {"name": "Sync Gold"})["object"]["id"]
    made = {
        "prices": {
            stripe_admin.create_object("prices", {"product": product})["object"]["id"] for _ in range(3)
        },
        "plans": {
            stripe_admin.create_object("plans", {"product": product})["object"]["id"] for _ in range(2)
        },
    }
    sync = reader(fakes, http, page_size=100, pages=1)

    for resource, ids in made.items():
        listed: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await sync.list_of_product(resource, product, cursor)
            listed += [dict(raw) for raw in page.objects]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert {raw["id"] for raw in listed} == ids
        assert {(raw["product"]["id"], raw["product"]["name"]) for raw in listed} == {(product, "Sync Gold")}
