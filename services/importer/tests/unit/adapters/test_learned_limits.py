"""An account's learned pace in one process: what answers teach it, what it keeps, what it shares."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from contracts.events import Processor
from contracts.runtime.metrics import REGISTRY
from importer.adapters.learned_limits import RateLearner, SharedView, in_window
from importer.adapters.processor_http import ProcessorAccount, ProcessorClient, RetryPolicy
from importer.adapters.rate_budget import RateLimits
from importer.domain.rate_learning import LearnedLimit
from importer_fakes import InMemoryLearnedLimitStore

KEY = "chargebee:acme-test"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def learner(store: InMemoryLearnedLimitStore, clock: Clock) -> RateLearner:
    return RateLearner(store, headroom=0.99, clock=clock)


async def test_an_unknown_site_is_paced_at_the_configured_limit() -> None:
    pace = learner(InMemoryLearnedLimitStore(), Clock()).account(
        "chargebee", KEY, 150.0, beyond_configured=True
    )
    assert (await pace.limits()).per_s == pytest.approx(150.0 / 60 * 0.99)


async def test_a_refusal_lowers_the_stored_limit_to_the_requests_accepted_in_the_window() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    limits = await pace.limits()
    for _ in range(100):  # 100 accepted over 40 s, then the site refuses
        pace.waited(1.0, limits)
        await pace.accepted()
        clock.now += 0.4
    delay = await pace.refused()
    assert store.limits[KEY].per_min == 100.0
    assert store.limits[KEY].refused_at == clock.now
    assert (await pace.limits()).per_s == pytest.approx(100.0 / 60 * 0.99)
    # Evenly paced at about the new limit: room as soon as the oldest leaves the window.
    assert delay == pytest.approx(20.0, abs=0.5)
    value = REGISTRY.get_sample_value(
        "importer_processor_learned_rate_per_minute", {"processor": "chargebee", "account": KEY}
    )
    assert value == 100.0


async def test_the_next_process_starts_from_what_was_learned() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    store.limits[KEY] = LearnedLimit(per_min=420.0, changed_at=clock.now - 600, refused_at=clock.now - 600)
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    assert (await pace.limits()).per_s == pytest.approx(420.0 / 60 * 0.99)


async def test_a_busy_site_is_probed_upward_and_the_raise_is_shared() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    limits = await pace.limits()
    for _ in range(30):  # every request waited for its slot for 11 s: the budget held them back
        pace.waited(0.4, limits)
        await pace.accepted()
        clock.now += 0.4
    assert store.limits[KEY].per_min == 300.0
    other = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    assert (await other.limits()).per_s == pytest.approx(300.0 / 60 * 0.99)


async def test_a_site_that_is_not_busy_is_not_probed() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    limits = await pace.limits()
    for _ in range(30):
        pace.waited(0.0, limits)
        await pace.accepted()
        clock.now += 0.4
    assert KEY not in store.limits


async def test_a_live_site_is_not_probed_past_the_configured_limit() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=False)
    limits = await pace.limits()
    for _ in range(30):
        pace.waited(1.0, limits)
        await pace.accepted()
        clock.now += 0.4
    assert KEY not in store.limits


async def test_a_raise_lost_to_another_replica_reads_what_it_learned() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    limits = await pace.limits()
    store.limits[KEY] = LearnedLimit(per_min=90.0, changed_at=clock.now, refused_at=clock.now)
    for _ in range(30):
        pace.waited(1.0, limits)
        await pace.accepted()
        clock.now += 0.4
    assert store.limits[KEY].per_min == 90.0
    assert (await pace.limits()).per_s == pytest.approx(90.0 / 60 * 0.99)


async def test_a_refusal_counts_what_the_other_replicas_sent_in_the_window() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    replicas = [
        learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True) for _ in range(3)
    ]
    for _ in range(8):  # 24 requests accepted in turn by the three replicas, each reading before it
        for pace in replicas:
            clock.now += 0.5
            await pace.limits()
            await pace.accepted()
    clock.now += 1.0
    for pace in replicas[1:]:
        await pace.limits()  # their last reports hold all they sent
    await replicas[0].refused()
    assert store.limits[KEY].per_min == 24.0
    # Reports stay valid, but what they counted leaves the window as it turns a minute old.
    store.limits[KEY] = LearnedLimit(per_min=24.0, changed_at=clock.now - 600, refused_at=clock.now - 600)
    clock.now += 50.0
    await replicas[0].accepted()
    clock.now += 8.0  # the first ~12 of the 16 the others sent are older than a minute now
    await replicas[0].refused()
    assert 3.0 <= store.limits[KEY].per_min <= 6.0


def test_a_second_the_window_starts_in_counts_for_its_share() -> None:
    assert in_window([(100, 10), (130, 4), (159, 2)], now=160.5, window_s=60.0) == pytest.approx(5 + 4 + 2)
    assert in_window([(100, 10)], now=161.0, window_s=60.0) == 0.0


class FailingStore(InMemoryLearnedLimitStore):
    async def report(
        self, account_key: str, sender: str, seconds: list[tuple[int, int]], now: float
    ) -> SharedView:
        raise ConnectionError("store down")

    async def lower(self, account_key: str, limit: LearnedLimit) -> LearnedLimit:
        raise ConnectionError("store down")


async def test_an_unreachable_store_never_fails_a_request() -> None:
    clock = Clock()
    pace = learner(FailingStore(), clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    assert (await pace.limits()).per_s == pytest.approx(150.0 / 60 * 0.99)
    await pace.accepted()
    clock.now += 1.0
    await pace.refused()
    assert pace.per_min == 1.0  # what the one accepted request taught, kept in this process


class RecordingBudget:
    def __init__(self) -> None:
        self.acquired: list[RateLimits | None] = []
        self.penalties: list[float] = []

    async def acquire(self, account_key: str, endpoint: str, *, limits: RateLimits | None = None) -> None:
        self.acquired.append(limits)

    async def penalize(self, account_key: str, retry_after_s: float, *, endpoint: str | None = None) -> None:
        self.penalties.append(retry_after_s)


async def test_the_client_paces_at_the_learned_limit_and_waits_for_room_after_a_429() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    store.limits[KEY] = LearnedLimit(per_min=120.0, changed_at=clock.now - 600, refused_at=clock.now - 600)
    pace = learner(store, clock).account("chargebee", KEY, 150.0, beyond_configured=True)
    answers = iter(
        [httpx.Response(200, json={"list": []})] * 3
        + [
            httpx.Response(429, json={"api_error_code": "api_request_limit_exceeded"}),
            httpx.Response(200, json={}),
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        clock.now += 10.0
        return next(answers)

    budget = RecordingBudget()

    async def no_sleep(seconds: float) -> None:
        return None

    client = ProcessorClient(
        httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        ProcessorAccount(Processor.CHARGEBEE, KEY, RateLimits(150.0 / 60), httpx.BasicAuth("k", "")),
        budget,
        policy=RetryPolicy(rate_limit_window_s=60.0),
        owns_http=True,
        sleep=no_sleep,
        pace=pace,
    )
    for _ in range(4):
        await client.get_json("https://acme-test.chargebee.test/api/v2/customers", [], endpoint="customers")
    await client.aclose()
    assert budget.acquired[0] == RateLimits(120.0 / 60 * 0.99)
    # Three accepted in the window when the site refused: the site's limit is 3 a minute; no
    # Retry-After, so the wait is until the oldest of them leaves the window (not a whole minute).
    assert store.limits[KEY].per_min == 3.0
    assert budget.penalties == [pytest.approx(30.0)]
    assert budget.acquired[-1] == RateLimits(3.0 / 60 * 0.99)


async def test_refusals_answered_at_once_lower_the_limit_once() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    pace = learner(store, clock).account("chargebee", "chargebee:burst-test", 150.0, beyond_configured=True)
    await pace.limits()
    for _ in range(50):
        await pace.accepted()
        clock.now += 0.2
    lowered = {"processor": "chargebee", "direction": "lowered"}
    before = REGISTRY.get_sample_value("importer_processor_learned_rate_changes_total", lowered) or 0.0
    await asyncio.gather(*(pace.refused() for _ in range(4)))
    after = REGISTRY.get_sample_value("importer_processor_learned_rate_changes_total", lowered) or 0.0
    assert after - before == 1.0
    assert store.limits["chargebee:burst-test"].per_min == 50.0


async def test_after_a_refusal_a_replica_waits_for_room_left_by_every_replica() -> None:
    store, clock = InMemoryLearnedLimitStore(), Clock()
    start = clock.now
    first, second = (
        learner(store, clock).account("chargebee", KEY, 600.0, beyond_configured=True) for _ in "ab"
    )
    # This replica sent 30 in the minute's first 15 s; the other 30 in its last 5 s.
    clock.now = start + 0.5
    for _ in range(30):
        await first.accepted()
        clock.now += 0.5
    clock.now = start + 55.0
    for _ in range(30):
        await second.accepted()
        clock.now += 5.0 / 30
    await second.limits()
    clock.now = start + 60.0
    delay = await first.refused()
    assert store.limits[KEY].per_min == 60.0
    # Its own requests alone would leave room at once (30 of 60). The other's leave from 115 s on:
    # pacing at the new limit (about one a second), the 31st request must not go before the
    # first of them left.
    interval = 60.0 / (60.0 * 0.99)
    assert delay == pytest.approx(115.0 - 60.0 - 30 * interval, abs=0.6)
