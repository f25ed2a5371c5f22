"""The import pipeline's use cases on in-memory adapters: exact counts, once-only outcomes, crashes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from contracts.events import ImportCompleted, ImportFailed, ImportProgressed, ImportStarted, Mode, Processor
from contracts.records import CancellationRecord, CustomerRecord, SubscriptionRecord
from contracts.runtime.dead_letter import DeadLetter
from contracts.runtime.metrics import REGISTRY
from importer.domain.model import FailureCode, ImportStatus, PageStatus, StartImport
from importer.domain.page_requests import PAGE_REQUESTS_TOPIC, PageRequestMessage
from importer.domain.planning import PlannedPage, SlicingPolicy
from importer.domain.ports import SourceUnavailable
from importer.domain.resources import count_key, time_field, windowable
from importer.domain.source import FetchedPage, PageQuery, SourceError, SourceErrorCode
from importer.entrypoints.page_requests import page_dead_letter_handler
from importer.service.cancel_imports import cancel_imports
from importer.service.dependencies import Dependencies, Tuning
from importer.service.outcomes import fail_import
from importer.service.pages import PageOutcome, import_page
from importer.service.prefetch import Prefetches
from importer.service.recovery import recover
from importer.service.start_import import start_import
from importer_fakes import (
    PAGE_REQUEST_PARTITIONS,
    AssignedPartitions,
    InMemoryAnnouncedImports,
    InMemoryImportRepository,
    InMemoryPageLedger,
    InMemoryRecordStore,
    InMemoryRecoveredRevenueSources,
    RecordingPublisher,
)
from sandbox.data import DatasetOptions, generate_dataset

DATASET = generate_dataset(DatasetOptions.for_size("tiny"))
PAGE_SIZE = 4


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeSource:
    """A processor's list endpoints over in-memory objects: windows on the creation time, newest
    first with ``starting_after`` (Stripe) or oldest first with a numeric offset (Chargebee)."""

    def __init__(self, processor: Processor, data: Mapping[str, list[dict[str, Any]]]) -> None:
        self.processor = processor
        self.data = data
        self.requests = 0
        #: The query of each fetch, in order.
        self.queries: list[PageQuery] = []
        #: resource → error raised by its next fetches (all of them while set)
        self.failing: dict[str, SourceError] = {}

    def resources(self) -> Sequence[str]:
        return list(self.data)

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        self.requests += 1
        self.queries.append(query)
        await asyncio.sleep(0)  # a real request yields: concurrent deliveries interleave here
        if query.resource in self.failing:
            raise self.failing[query.resource]
        stamp = time_field(self.processor, query.resource)
        newest_first = self.processor is Processor.STRIPE
        if not windowable(self.processor, query.resource):
            # Read whole, in the processor's own order (catalog objects have no creation time).
            stamp = "id"
        chosen = sorted(
            (
                obj
                for obj in self.data[query.resource]
                if stamp == "id" or query.window.contains(int(obj[stamp]))
            ),
            key=lambda obj: (obj[stamp], obj["id"]),
            reverse=newest_first,
        )
        if newest_first:
            start = 0 if query.cursor is None else [obj["id"] for obj in chosen].index(query.cursor) + 1
        else:
            start = int(query.cursor or 0)
        page = chosen[start : start + query.limit]
        more = start + query.limit < len(chosen)
        cursor = (page[-1]["id"] if newest_first else str(start + query.limit)) if more and page else None
        return FetchedPage(
            objects=page,
            next_cursor=cursor,
            first_created=int(page[0][stamp]) if page and stamp != "id" else None,
            last_created=int(page[-1][stamp]) if page and stamp != "id" else None,
        )

    async def aclose(self) -> None:
        return None


@dataclass
class FakeSources:
    source: FakeSource
    unavailable: bool = False
    #: The stored credentials' version (a reconnect counts one more).
    credentials_version: int = 0

    async def source_for(self, job: Any) -> FakeSource:
        if self.unavailable:
            raise SourceUnavailable("the connection is disconnected, not connected")
        return self.source

    def forget(self, connection_id: str) -> None:
        return None

    async def replaced_since(self, job: Any, refused_version: int | None) -> bool:
        return refused_version is not None and self.credentials_version > refused_version


@dataclass
class Harness:
    processor: Processor
    deps: Dependencies
    source: FakeSource
    sources: FakeSources
    imports: InMemoryImportRepository
    ledger: InMemoryPageLedger
    records: InMemoryRecordStore
    bus: RecordingPublisher
    clock: Clock
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def start(self, import_id: str = "imp_1") -> None:
        await start_import(
            self.deps,
            StartImport(
                import_id=import_id,
                account_id="acct_1",
                connection_id="conn_1",
                processor=self.processor,
                contact_email="owner@example.com",
                mode=Mode.LIVE,
            ),
        )

    async def drain(
        self, *, duplicate_every: int = 0, concurrently: bool = False, limit: int = 10_000
    ) -> int:
        """Deliver every page request published (in random order), as the consumer would; with
        ``duplicate_every``, every n-th request twice, one after the other or at the same time."""
        handled = 0
        while self.bus.pages and handled < limit:
            queue = self.bus.take_pages()
            self.rng.shuffle(queue)
            for _, page in queue:
                handled += 1
                if duplicate_every and handled % duplicate_every == 0:
                    if concurrently:
                        await asyncio.gather(self.deliver(page), self.deliver(page))
                    else:
                        await self.deliver(page)
                        await self.deliver(page)
                else:
                    await self.deliver(page)
            self.clock.advance(0.3)
        return handled

    async def deliver(self, page: PlannedPage) -> PageOutcome:
        message = PageRequestMessage.of("acct_1", page)
        report = await import_page(self.deps, message.import_id, message.page_id)
        return report.outcome

    def expected(self) -> dict[str, int]:
        data = DATASET.stripe if self.processor is Processor.STRIPE else DATASET.chargebee
        totals: dict[str, int] = {}
        for resource, objects in data.items():
            key = count_key(self.processor, resource)
            totals[key] = totals.get(key, 0) + len(objects)
        return totals

    def canceled(self) -> int:
        data = DATASET.stripe if self.processor is Processor.STRIPE else DATASET.chargebee
        return sum(1 for sub in data["subscriptions"] if sub["status"] in ("canceled", "cancelled"))


def make_harness(processor: Processor = Processor.STRIPE) -> Harness:
    clock = Clock()
    data = DATASET.stripe if processor is Processor.STRIPE else DATASET.chargebee
    source = FakeSource(processor, data)
    sources = FakeSources(source)
    imports, ledger, records, bus = (
        InMemoryImportRepository(),
        InMemoryPageLedger(),
        InMemoryRecordStore(),
        RecordingPublisher(),
    )
    policy = SlicingPolicy(
        page_size=PAGE_SIZE, chains_per_resource=6, import_chains=12, min_pages_per_slice=1
    )
    deps = Dependencies(
        imports=imports,
        ledger=ledger,
        records=records,
        events=bus,
        record_publisher=bus,
        page_publisher=bus,
        sources=sources,
        queries=records,
        announced=InMemoryAnnouncedImports(),
        recovered_revenue=InMemoryRecoveredRevenueSources(records),
        tuning=Tuning(stripe_live_slicing=policy, chargebee_slicing=policy, progress_interval_s=0.0),
        clock=clock,
    )
    deps.local.job_ttl_s = 0.0
    deps.local.no_room_backoff_s = 0.0
    return Harness(processor, deps, source, sources, imports, ledger, records, bus, clock)


@pytest.fixture(params=[Processor.STRIPE, Processor.CHARGEBEE], ids=["stripe", "chargebee"])
def harness(request: pytest.FixtureRequest) -> Harness:
    return make_harness(request.param)


def ended(processor: Processor, outcome: str) -> float:
    """Imports counted as ended so far (the metric is process-wide, so tests compare before/after)."""
    return (
        REGISTRY.get_sample_value(
            "importer_imports_total", {"processor": processor.value, "outcome": outcome}
        )
        or 0.0
    )


def timed(processor: Processor, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "importer_import_duration_seconds_count", {"processor": processor.value, "outcome": outcome}
        )
        or 0.0
    )


async def test_an_import_copies_every_object_and_completes_once_with_exact_counts(harness: Harness) -> None:
    before = ended(harness.processor, "completed"), timed(harness.processor, "completed")
    await harness.start()
    await harness.drain()

    job = harness.imports.jobs["imp_1"]
    assert job.status is ImportStatus.COMPLETED
    # Counted once, with its duration, for the dashboards.
    assert (ended(harness.processor, "completed"), timed(harness.processor, "completed")) == (
        before[0] + 1,
        before[1] + 1,
    )
    completed = harness.bus.events_of(ImportCompleted)
    assert len(completed) == 1
    assert {key: count.imported for key, count in completed[0].resources.items()} == harness.expected()
    assert completed[0].past_cancellations == harness.canceled() > 0
    assert completed[0].contact_email == "owner@example.com"
    assert len(harness.bus.events_of(ImportStarted)) == 1
    data = DATASET.stripe if harness.processor is Processor.STRIPE else DATASET.chargebee
    stored_customers = {record.object_id for record in harness.records.records(CustomerRecord.collection)}
    assert stored_customers == {customer["id"] for customer in data["customers"]}
    stored_subscriptions = harness.records.records(SubscriptionRecord.collection)
    assert len(stored_subscriptions) == len(data["subscriptions"])
    assert len(harness.records.records(CancellationRecord.collection)) == harness.canceled()
    published = {record.key() for record in harness.bus.records}
    assert {record.key() for record in stored_subscriptions} <= published


async def test_more_than_one_chain_runs_per_large_resource() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    await harness.drain()

    invoice_windows = [
        entry
        for entry in harness.ledger.pages.values()
        if entry.page.resource == "invoices" and not entry.page.query.cursor
    ]
    assert len(invoice_windows) > 1


async def test_a_redelivered_trigger_does_not_start_a_second_import(harness: Harness) -> None:
    await harness.start()
    roots = len(harness.bus.pages)
    await harness.start()

    assert len(harness.imports.jobs) == 1
    assert len(harness.bus.pages) == roots
    assert len(harness.bus.events_of(ImportStarted)) == 1


@pytest.mark.parametrize("concurrently", [False, True], ids=["in_turn", "at_once"])
async def test_redelivered_page_requests_count_nothing_twice(harness: Harness, concurrently: bool) -> None:
    await harness.start()
    await harness.drain(duplicate_every=2, concurrently=concurrently)

    completed = harness.bus.events_of(ImportCompleted)
    assert len(completed) == 1
    assert {key: count.imported for key, count in completed[0].resources.items()} == harness.expected()


@pytest.mark.parametrize("moment", ["before", "after"])
async def test_a_crash_around_marking_a_page_done_neither_loses_nor_doubles(moment: str) -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    queue = harness.bus.take_pages()
    invoices = next(page for _, page in queue if page.resource == "invoices")
    harness.ledger.fail_next_complete = moment

    with pytest.raises(ConnectionError):
        await harness.deliver(invoices)
    # The request was not committed: it comes back (after the restart), with the others.
    harness.clock.advance(30)
    harness.bus.pages.extend(("acct_1", page) for _, page in queue)
    await harness.drain()

    completed = harness.bus.events_of(ImportCompleted)
    assert len(completed) == 1
    assert {key: count.imported for key, count in completed[0].resources.items()} == harness.expected()


async def test_a_redelivered_done_page_does_not_send_its_fresh_children_again() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    invoices = next(page for _, page in harness.bus.take_pages() if page.resource == "invoices")
    await harness.deliver(invoices)
    children = harness.bus.take_pages()
    assert children

    assert await harness.deliver(invoices) is PageOutcome.ALREADY_DONE
    assert harness.bus.pages == []


async def test_a_rejected_key_fails_the_import_once_and_its_other_pages_are_skipped(harness: Harness) -> None:
    before = ended(harness.processor, "credentials_rejected")
    await harness.start()
    harness.source.failing["customers"] = SourceError(
        SourceErrorCode.KEY_REJECTED, "the API key was revoked", retryable=False, status=401
    )
    queue = harness.bus.take_pages()
    outcomes = [await harness.deliver(page) for _, page in queue]

    failed = harness.bus.events_of(ImportFailed)
    assert len(failed) == 1
    assert failed[0].code == "credentials_rejected"
    assert ended(harness.processor, "credentials_rejected") == before + 1
    assert PageOutcome.FAILED_IMPORT in outcomes
    assert harness.imports.jobs["imp_1"].status is ImportStatus.FAILED
    requests = harness.source.requests
    await harness.drain()
    assert harness.source.requests == requests
    assert harness.bus.events_of(ImportCompleted) == []


async def test_a_401_to_credentials_a_reconnect_replaced_tries_the_page_again(harness: Harness) -> None:
    await harness.start()
    # This process's source was built before a reconnect: the store holds the next credentials.
    harness.sources.credentials_version = 1
    harness.source.failing["customers"] = SourceError(
        SourceErrorCode.KEY_REJECTED,
        "the API key was revoked",
        retryable=False,
        status=401,
        credentials_version=0,
    )
    page = next(page for _, page in harness.bus.take_pages() if page.resource == "customers")

    with pytest.raises(SourceError) as raised:
        await harness.deliver(page)

    assert raised.value.retryable
    assert harness.bus.events_of(ImportFailed) == []
    assert harness.imports.jobs["imp_1"].status is not ImportStatus.FAILED
    del harness.source.failing["customers"]
    assert await harness.deliver(page) is not PageOutcome.FAILED_IMPORT


async def test_a_401_reports_the_version_of_the_credentials_refused(harness: Harness) -> None:
    await harness.start()
    harness.sources.credentials_version = 2
    harness.source.failing["customers"] = SourceError(
        SourceErrorCode.KEY_REJECTED,
        "the API key was revoked",
        retryable=False,
        status=401,
        credentials_version=2,
    )
    page = next(page for _, page in harness.bus.take_pages() if page.resource == "customers")

    await harness.deliver(page)

    [failed] = harness.bus.events_of(ImportFailed)
    assert (failed.code, failed.credentials_version) == ("credentials_rejected", 2)


async def test_a_retryable_error_goes_back_to_the_consumer_and_the_dead_letter_fails_the_import() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    error = SourceError(
        SourceErrorCode.PROCESSOR_UNAVAILABLE, "503 after 4 retries", retryable=True, status=503
    )
    harness.source.failing["invoices"] = error
    page = next(page for _, page in harness.bus.take_pages() if page.resource == "invoices")

    with pytest.raises(SourceError):
        await harness.deliver(page)
    body = PageRequestMessage.of("acct_1", page).model_dump_json().encode()
    await page_dead_letter_handler(harness.deps)(DeadLetter(PAGE_REQUESTS_TOPIC, b"k", body, 5, error))
    await page_dead_letter_handler(harness.deps)(DeadLetter(PAGE_REQUESTS_TOPIC, b"k", body, 5, error))

    failed = harness.bus.events_of(ImportFailed)
    assert [event.code for event in failed] == ["processor_unavailable"]
    assert "invoices" in failed[0].message


async def test_an_unavailable_connection_fails_the_import() -> None:
    harness = make_harness(Processor.CHARGEBEE)
    harness.sources.unavailable = True
    await harness.start()

    failed = harness.bus.events_of(ImportFailed)
    assert [event.code for event in failed] == ["connection_unavailable"]
    assert harness.bus.pages == []


async def test_disconnecting_stops_a_running_import() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    harness.bus.take_pages()

    assert await cancel_imports(harness.deps, "conn_1") == ["imp_1"]
    assert await cancel_imports(harness.deps, "conn_1") == []
    assert [event.code for event in harness.bus.events_of(ImportFailed)] == ["disconnected"]


async def test_progress_is_reported_with_counts_while_running() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    await harness.drain(limit=6)

    progressed = harness.bus.events_of(ImportProgressed)
    assert progressed
    assert sum(count.imported for count in progressed[-1].resources.values()) > 0
    running = harness.imports.jobs["imp_1"]
    assert running.status is ImportStatus.RUNNING
    assert sum(running.resources.values()) > 0


async def test_recovery_finishes_an_import_whose_finisher_died() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    await harness.drain()
    job = harness.imports.jobs["imp_1"]
    # As if the finisher had claimed the import and died before completing it.
    from dataclasses import replace

    harness.imports.jobs["imp_1"] = replace(job, status=ImportStatus.FINALIZING)
    harness.bus.events.clear()

    assert await recover(harness.deps) == 0  # its lease has not run out yet
    harness.clock.advance(harness.deps.tuning.finalize_lease_s + 1)
    assert await recover(harness.deps) == 1

    completed = harness.bus.events_of(ImportCompleted)
    assert len(completed) == 1
    assert {key: count.imported for key, count in completed[0].resources.items()} == harness.expected()


async def test_recovery_publishes_an_outcome_decided_but_not_published() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    await harness.drain()
    from dataclasses import replace

    harness.imports.jobs["imp_1"] = replace(harness.imports.jobs["imp_1"], outcome_published=False)
    first = harness.bus.events_of(ImportCompleted)[0]

    await recover(harness.deps)  # too soon: whoever ended it may be publishing right now
    assert len(harness.bus.events_of(ImportCompleted)) == 1
    harness.clock.advance(harness.deps.tuning.outcome_grace_s + 1)
    await recover(harness.deps)
    await recover(harness.deps)

    again = harness.bus.events_of(ImportCompleted)
    assert len(again) == 2
    assert again[1].event_id == first.event_id  # the same event: consumers act on it once


async def test_recovery_republishes_a_page_whose_request_was_lost() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    lost = harness.bus.take_pages()

    harness.clock.advance(harness.deps.tuning.stale_page_after_s + 1)
    await recover(harness.deps)

    assert {page.page_id for _, page in harness.bus.pages} == {page.page_id for _, page in lost}
    await harness.drain()
    assert len(harness.bus.events_of(ImportCompleted)) == 1


def status_of(harness: Harness, import_id: str) -> ImportStatus:
    return harness.imports.jobs[import_id].status


async def test_a_second_import_of_a_connection_waits_for_the_first_and_keeps_its_cancellations() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start("imp_1")
    await harness.drain(limit=3)
    await harness.start("imp_2")

    # The second import is planned but stays queued: nothing of it is fetched while the first runs.
    assert status_of(harness, "imp_2") is ImportStatus.QUEUED
    assert all(page.import_id == "imp_1" for _, page in harness.bus.pages)
    assert [event.import_id for event in harness.bus.events_of(ImportStarted)] == ["imp_1"]
    harness.clock.advance(10)
    await recover(harness.deps)
    assert status_of(harness, "imp_2") is ImportStatus.QUEUED

    await harness.drain()
    assert harness.imports.jobs["imp_1"].status is ImportStatus.COMPLETED
    harness.clock.advance(10)
    await recover(harness.deps)  # the connection is free: the waiting import starts
    assert status_of(harness, "imp_2") is ImportStatus.RUNNING
    await harness.drain()

    first, second = harness.imports.jobs["imp_1"], harness.imports.jobs["imp_2"]
    assert second.status is ImportStatus.COMPLETED
    assert first.finished_at is not None
    assert second.started_at is not None
    assert second.started_at >= first.finished_at
    cancellations = harness.records.records(CancellationRecord.collection)
    assert len(cancellations) == harness.canceled()


# A chain's next page fetched while its parent is written: same pages, same counts, no extra requests.

PARTITION = 3


async def deliver_on(harness: Harness, page: PlannedPage, partition: int | None = PARTITION) -> PageOutcome:
    message = PageRequestMessage.of("acct_1", page)
    report = await import_page(harness.deps, message.import_id, message.page_id, partition=partition)
    return report.outcome


async def drain_on_one_partition(harness: Harness) -> int:
    """Every request published, handled by this process in the order sent (one partition's view)."""
    handled = 0
    while harness.bus.pages:
        for _, page in harness.bus.take_pages():
            handled += 1
            assert await deliver_on(harness, page) is PageOutcome.IMPORTED
    return handled


async def import_continuation(harness: Harness, continuation: PlannedPage) -> int:
    """Deliver ``continuation``, see it imported with its objects, and return how many
    continuations it led to (each fetched ahead at once)."""
    assert await deliver_on(harness, continuation) is PageOutcome.IMPORTED
    await asyncio.sleep(0)
    entry = await harness.ledger.get(continuation.page_id)
    assert entry is not None
    assert entry.status is PageStatus.DONE
    assert entry.objects > 0
    return len([page for _, page in harness.bus.take_pages() if page.query.cursor is not None])


#: Half the page requests' partitions, as owned by this process's consumer.
EVEN_PARTITIONS = frozenset(range(0, PAGE_REQUEST_PARTITIONS, 2))


@pytest.mark.parametrize("processor", [Processor.STRIPE, Processor.CHARGEBEE], ids=["stripe", "chargebee"])
@pytest.mark.parametrize(
    "owned",
    [frozenset(), EVEN_PARTITIONS, frozenset(range(PAGE_REQUEST_PARTITIONS))],
    ids=["no-partition-owned", "half-owned", "all-owned"],
)
async def test_an_import_with_pages_fetched_ahead_asks_each_page_once(
    processor: Processor, owned: frozenset[int]
) -> None:
    harness = make_harness(processor)
    harness.deps.local.page_partitions = AssignedPartitions(owned)
    await harness.start()
    pages = await drain_on_one_partition(harness)

    assert harness.imports.jobs["imp_1"].status is ImportStatus.COMPLETED
    completed = harness.bus.events_of(ImportCompleted)
    assert len(completed) == 1
    assert {key: count.imported for key, count in completed[0].resources.items()} == harness.expected()
    # Every page fetched once: a continuation fetched ahead is the fetch its request uses.
    assert harness.source.requests == pages
    assert len(harness.deps.local.prefetches) == 0
    # Continuations stay on the partition their chain is handled from; fresh windows spread.
    continued = [
        partition
        for (_, page), partition in zip(harness.bus.pages_sent, harness.bus.partitions, strict=True)
        if page.query.cursor is not None
    ]
    assert continued
    assert set(continued) == {PARTITION}
    fresh = [
        partition
        for (_, page), partition in zip(harness.bus.pages_sent, harness.bus.partitions, strict=True)
        if page.query.cursor is None
    ]
    assert set(fresh) == {None}


async def test_the_continuation_is_fetched_before_its_request_arrives() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    roots = harness.bus.take_pages()
    customers = next(page for _, page in roots if page.query.resource == "customers")

    await deliver_on(harness, customers)
    await asyncio.sleep(0)  # the fetch ahead runs in its own task
    children = harness.bus.take_pages()
    continuation = next(page for _, page in children if page.query.cursor is not None)
    asked = harness.source.requests
    assert asked == 2  # the page, and its continuation ahead of its request

    next_ones = await import_continuation(harness, continuation)
    # Its own fetch was the one made ahead: since, only its own continuation (if any) was asked for.
    assert harness.source.requests == asked + next_ones


async def test_a_request_handled_without_its_partition_fetches_nothing_ahead() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    customers = next(page for _, page in harness.bus.take_pages() if page.query.resource == "customers")

    await deliver_on(harness, customers, partition=None)
    await asyncio.sleep(0)

    assert harness.source.requests == 1
    assert set(harness.bus.partitions) == {None}


async def test_a_continuation_whose_fetch_ahead_failed_is_fetched_again() -> None:
    harness = make_harness(Processor.STRIPE)
    await harness.start()
    customers = next(page for _, page in harness.bus.take_pages() if page.query.resource == "customers")
    fetch_page = harness.source.fetch_page
    refused: list[PageQuery] = []

    async def refuse_the_first_fetch_ahead(query: PageQuery) -> FetchedPage:
        if query.cursor is not None and not refused:
            refused.append(query)  # say, a 429: the page's own handling asks again
            harness.source.requests += 1
            raise SourceError(SourceErrorCode.RATE_LIMITED, "slow down", retryable=True)
        return await fetch_page(query)

    harness.source.fetch_page = refuse_the_first_fetch_ahead  # type: ignore[method-assign]
    await deliver_on(harness, customers)
    await asyncio.sleep(0)
    continuation = next(page for _, page in harness.bus.take_pages() if page.query.cursor is not None)
    assert refused == [continuation.query]
    asked = harness.source.requests

    next_ones = await import_continuation(harness, continuation)
    assert harness.source.requests == asked + 1 + next_ones


async def test_fresh_windows_on_partitions_this_process_owns_are_fetched_once_ahead_and_used() -> None:
    harness = make_harness(Processor.STRIPE)
    harness.deps.local.page_partitions = AssignedPartitions(EVEN_PARTITIONS)
    await harness.start()
    customers = next(page for _, page in harness.bus.take_pages() if page.query.resource == "customers")

    await deliver_on(harness, customers)
    await asyncio.sleep(0)  # the fetches ahead run in their own tasks
    children = [page for _, page in harness.bus.take_pages()]
    continuation = next(page for page in children if page.query.cursor is not None)
    fresh = [page for page in children if page.query.cursor is None]
    owned = [page for page in fresh if await harness.bus.request_partition(page) in EVEN_PARTITIONS]
    elsewhere = [page for page in fresh if page not in owned]
    assert owned
    assert elsewhere
    # Fetched at once: the continuation and the fresh windows whose requests come to this process.
    assert Counter(harness.source.queries) == Counter(
        page.query for page in [customers, continuation, *owned]
    )
    # Their requests go where they went before: the continuation to its parent's partition, fresh
    # windows by their key (``None``), owned or not.
    sent = {
        page.page_id: partition
        for (_, page), partition in zip(harness.bus.pages_sent, harness.bus.partitions, strict=True)
    }
    assert {page.page_id: sent[page.page_id] for page in children} == {
        page.page_id: PARTITION if page is continuation else None for page in children
    }

    reference = FakeSource(Processor.STRIPE, DATASET.stripe)
    imported: dict[str, int] = {}
    for page in fresh:
        asked = harness.source.queries.count(page.query)
        assert await deliver_on(harness, page) is PageOutcome.IMPORTED
        entry = await harness.ledger.get(page.page_id)
        assert entry is not None
        assert entry.status is PageStatus.DONE
        assert entry.objects == len((await reference.fetch_page(page.query)).objects)
        imported[page.page_id] = entry.objects
        # One fetch in all: an owned window's request used the one made ahead, the others fetched
        # theirs when their request came.
        assert harness.source.queries.count(page.query) == 1
        assert asked == (1 if page in owned else 0)
    assert sum(imported[page.page_id] for page in owned) > 0  # not only empty windows


def prefetched(outcome: str) -> float:
    return REGISTRY.get_sample_value("importer_page_prefetches_total", {"outcome": outcome}) or 0.0


async def test_fetches_ahead_are_bounded_and_dropped_when_nobody_takes_them() -> None:
    before = {outcome: prefetched(outcome) for outcome in ("started", "taken", "full", "dropped")}
    prefetches = Prefetches[FetchedPage](ttl_s=0.0, max_pages=2)
    started: list[str] = []

    async def fetch() -> FetchedPage:
        started.append("fetch")
        await asyncio.sleep(10)
        return FetchedPage(objects=[], next_cursor=None)

    assert prefetches.start("p1", fetch)
    first = prefetches.take("p1")
    assert first is not None
    assert prefetches.take("p1") is None  # handed out once
    first.cancel()

    bounded = Prefetches[FetchedPage](max_pages=2)
    assert bounded.start("a", fetch)
    assert not bounded.start("a", fetch)  # already under way
    assert bounded.start("b", fetch)
    assert not bounded.start("c", fetch)  # two are waiting to be taken
    assert len(bounded) == 2
    for page_id in ("a", "b"):
        task = bounded.take(page_id)
        assert task is not None
        task.cancel()

    expired = Prefetches[FetchedPage](ttl_s=0.0)
    assert expired.start("old", fetch)
    old = expired._fetches["old"][1]
    assert expired.start("new", fetch)  # starting another drops the expired one
    await asyncio.sleep(0)
    assert old.cancelled()
    assert expired.take("old") is None
    new = expired.take("new")
    assert new is not None
    new.cancel()
    # What an SRE sees: 5 started, 4 taken, 1 not started for want of room, 1 dropped untaken.
    after = {outcome: prefetched(outcome) - count for outcome, count in before.items()}
    assert after == {"started": 5, "taken": 4, "full": 1, "dropped": 1}


# A page fetched ahead is written ahead: its records are stored and published as soon as it is
# fetched, and its request, when it comes, only has the ledger step left.


async def settle() -> None:
    """Let the tasks started ahead (fetches, then writes) run as far as they can."""
    for _ in range(50):
        await asyncio.sleep(0)


def count_writes(harness: Harness) -> Counter[tuple[str, str]]:
    """Every record written to the store from now on, by (collection, object id), each time it is
    written."""
    written: Counter[tuple[str, str]] = Counter()
    write = harness.records.write

    async def counting_write(
        import_id: str, records: Sequence[Any], now: datetime, *, began_at: datetime | None = None
    ) -> None:
        written.update((record.collection, record.object_id) for record in records)
        await write(import_id, records, now, began_at=began_at)

    harness.records.write = counting_write  # type: ignore[method-assign]
    return written


async def test_a_page_fetched_ahead_is_written_before_its_request_and_only_once() -> None:
    harness = make_harness(Processor.STRIPE)
    written = count_writes(harness)
    await harness.start()
    customers = next(page for _, page in harness.bus.take_pages() if page.query.resource == "customers")
    await deliver_on(harness, customers)
    await settle()
    continuation = next(page for _, page in harness.bus.take_pages() if page.query.cursor is not None)
    expected = (await FakeSource(Processor.STRIPE, DATASET.stripe).fetch_page(continuation.query)).objects
    ids = {str(customer["id"]) for customer in expected}
    assert ids

    # Before its request is delivered: its customers are in the store and on the records topic.
    stored = {record.object_id for record in harness.records.records(CustomerRecord.collection)}
    assert ids <= stored
    assert all(written[(CustomerRecord.collection, object_id)] == 1 for object_id in ids)
    published = Counter(
        record.object_id for record in harness.bus.records if isinstance(record, CustomerRecord)
    )
    assert all(published[object_id] == 1 for object_id in ids)
    entry = await harness.ledger.get(continuation.page_id)
    assert entry is not None
    assert entry.status is PageStatus.PENDING  # not done before its request: only written

    asked, writes = harness.source.requests, dict(written)
    assert await deliver_on(harness, continuation) is PageOutcome.IMPORTED

    entry = await harness.ledger.get(continuation.page_id)
    assert entry is not None
    assert entry.status is PageStatus.DONE
    assert entry.objects == len(expected)
    # Its request neither fetched nor wrote nor published them again.
    assert {key: written[key] for key in writes} == writes
    assert all(written[(CustomerRecord.collection, object_id)] == 1 for object_id in ids)
    published = Counter(
        record.object_id for record in harness.bus.records if isinstance(record, CustomerRecord)
    )
    assert all(published[object_id] == 1 for object_id in ids)
    assert continuation.query not in harness.source.queries[asked:]


def chain_of(harness: Harness, resource: str) -> list[PageQuery]:
    """The queries of ``resource``'s pages fetched so far, in order."""
    return [query for query in harness.source.queries if query.resource == resource]


@pytest.mark.parametrize(
    ("processor", "resource"),
    [(Processor.CHARGEBEE, "item_prices"), (Processor.CHARGEBEE, "items"), (Processor.STRIPE, "coupons")],
)
async def test_a_chain_that_cannot_be_cut_is_fetched_ahead_page_after_page(
    processor: Processor, resource: str
) -> None:
    harness = make_harness(processor)
    harness.deps.local.page_partitions = AssignedPartitions(frozenset())  # no fresh window ahead
    await harness.start()
    roots = harness.bus.take_pages()
    root = next(page for _, page in roots if page.query.resource == resource)
    data = DATASET.stripe if processor is Processor.STRIPE else DATASET.chargebee
    chain_pages = -(-len(data[resource]) // PAGE_SIZE)
    assert chain_pages >= 2

    writes = harness.records.writes
    await deliver_on(harness, root)
    await settle()

    # Only the root's request was handled, yet every page of the chain has been read, once each,
    # and written (one write a page).
    queries = chain_of(harness, resource)
    assert len(queries) == chain_pages
    assert len(set(queries)) == chain_pages
    assert queries[-1].cursor is not None
    assert harness.records.writes - writes == chain_pages

    # The rest of the import: each of its pages is still fetched exactly once in all.
    harness.bus.pages.extend(page for page in roots if page[1] is not root)
    handled = 1 + await drain_on_one_partition(harness)
    assert harness.imports.jobs["imp_1"].status is ImportStatus.COMPLETED
    assert harness.source.requests == handled
    assert Counter(harness.source.queries).most_common(1)[0][1] == 1
    completed = harness.bus.events_of(ImportCompleted)
    assert {key: count.imported for key, count in completed[0].resources.items()} == harness.expected()
    assert len(harness.deps.local.prefetches) == 0


@pytest.mark.parametrize("ending", ["disconnected", "failed"])
async def test_nothing_is_fetched_ahead_once_the_import_has_ended(ending: str) -> None:
    harness = make_harness(Processor.CHARGEBEE)
    await harness.start()
    root = next(page for _, page in harness.bus.take_pages() if page.query.resource == "item_prices")
    fetch_page = harness.source.fetch_page
    gate = asyncio.Event()

    async def continuations_wait(query: PageQuery) -> FetchedPage:
        if query.cursor is not None:
            await gate.wait()  # the first continuation is on its way while the import ends
        return await fetch_page(query)

    harness.source.fetch_page = continuations_wait  # type: ignore[method-assign]
    await deliver_on(harness, root)
    await settle()
    assert chain_of(harness, "item_prices") == [root.query]  # the continuation's fetch is under way

    written = count_writes(harness)
    if ending == "disconnected":
        assert await cancel_imports(harness.deps, "conn_1") == ["imp_1"]
    else:
        await fail_import(harness.deps, "imp_1", FailureCode.CREDENTIALS_REJECTED, "key revoked")
    assert harness.imports.jobs["imp_1"].status is ImportStatus.FAILED
    gate.set()
    await settle()

    # The fetch under way finished; the chain went no further, and wrote nothing for the ended import.
    queries = chain_of(harness, "item_prices")
    assert len(queries) == 2
    assert queries[1].cursor is not None
    assert len(harness.deps.local.prefetches) <= 1
    assert not written
