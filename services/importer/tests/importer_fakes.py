"""In-memory adapters with the store's and the broker's semantics, for unit tests and dry runs.

They keep the guarantees the use cases rely on (conditional transitions, the ledger's atomic step,
insert-or-replace by key), so a test of a use case against them tests the protocol, not a mock.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import Event
from contracts.records import (
    CancellationRecord,
    CanonicalRecord,
    CouponRecord,
    InvoiceRecord,
    SubscriptionRecord,
)
from importer.adapters.learned_limits import SharedView, others_seconds
from importer.domain.model import ImportJob, ImportStatus, LedgerPage, PageStatus
from importer.domain.planning import PlannedPage
from importer.domain.rate_learning import LearnedLimit
from importer.domain.recovered_revenue import AppliedOfferRecord

_UNFINISHED = (ImportStatus.QUEUED, ImportStatus.RUNNING, ImportStatus.FINALIZING)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InMemoryImportRepository:
    def __init__(self) -> None:
        self.jobs: dict[str, ImportJob] = {}
        self._leases: dict[str, datetime] = {}
        self._progress_at: dict[str, datetime] = {}

    async def create(self, job: ImportJob) -> bool:
        if job.import_id in self.jobs:
            return False
        self.jobs[job.import_id] = job
        return True

    async def get(self, import_id: str) -> ImportJob | None:
        return self.jobs.get(import_id)

    async def latest_for_account(
        self, account_id: str, status: ImportStatus | None = None
    ) -> ImportJob | None:
        jobs = [
            job
            for job in self.jobs.values()
            if job.account_id == account_id and (status is None or job.status is status)
        ]
        return max(jobs, key=lambda job: (job.created_at, job.import_id), default=None)

    async def writing_since(self, account_id: str, instant: datetime) -> bool:
        return any(
            job.account_id == account_id
            and (
                job.status in (ImportStatus.RUNNING, ImportStatus.FINALIZING)
                or (job.finished_at is not None and job.finished_at > instant)
            )
            for job in self.jobs.values()
        )

    async def mark_running(
        self,
        job: ImportJob,
        now: datetime,
        resources: Mapping[str, int] | None = None,
    ) -> ImportJob | None:
        stored = self.jobs.get(job.import_id)
        if stored is None or stored.status is not ImportStatus.QUEUED:
            return None
        job = stored
        if any(
            other.connection_id == job.connection_id
            and other.status in (ImportStatus.RUNNING, ImportStatus.FINALIZING)
            for other in self.jobs.values()
        ):
            return None
        return self._put(
            replace(
                job,
                status=ImportStatus.RUNNING,
                started_at=now,
                resources=dict(resources or {}),
            )
        )

    async def set_flag(self, import_id: str, flag: str) -> None:
        job = self.jobs.get(import_id)
        if job is None:
            return
        if flag == "pages_published":
            self._put(replace(job, pages_published=True))
        elif flag == "started_published":
            self._put(replace(job, started_published=True))
        elif flag == "outcome_published":
            self._put(replace(job, outcome_published=True))
        else:
            raise ValueError(f"unknown flag {flag!r}")

    async def fail(
        self,
        import_id: str,
        code: str,
        message: str,
        now: datetime,
        *,
        credentials_version: int | None = None,
    ) -> ImportJob | None:
        job = self.jobs.get(import_id)
        if job is None or job.status not in _UNFINISHED:
            return None
        return self._put(
            replace(
                job,
                status=ImportStatus.FAILED,
                finished_at=now,
                error_code=code,
                error_message=message,
                error_credentials_version=credentials_version,
                outcome_published=False,
            )
        )

    async def claim_finalization(self, import_id: str, now: datetime, lease_s: float) -> ImportJob | None:
        job = self.jobs.get(import_id)
        if job is None:
            return None
        expired = job.status is ImportStatus.FINALIZING and self._leases.get(import_id, _EPOCH) < now
        if job.status is not ImportStatus.RUNNING and not expired:
            return None
        self._leases[import_id] = now + timedelta(seconds=lease_s)
        return self._put(replace(job, status=ImportStatus.FINALIZING))

    async def complete(
        self, import_id: str, resources: Mapping[str, int], past_cancellations: int, now: datetime
    ) -> ImportJob | None:
        job = self.jobs.get(import_id)
        if job is None or job.status is not ImportStatus.FINALIZING:
            return None
        return self._put(
            replace(
                job,
                status=ImportStatus.COMPLETED,
                finished_at=now,
                resources=dict(resources),
                past_cancellations=past_cancellations,
                outcome_published=False,
            )
        )

    async def claim_progress(self, import_id: str, now: datetime, interval_s: float) -> bool:
        job = self.jobs.get(import_id)
        last = self._progress_at.get(import_id)
        if job is None or job.status is not ImportStatus.RUNNING:
            return False
        if last is not None and last > now - timedelta(seconds=interval_s):
            return False
        self._progress_at[import_id] = now
        return True

    async def add_progress(self, import_id: str, counts: Mapping[str, int]) -> None:
        job = self.jobs.get(import_id)
        if job is not None and job.status is ImportStatus.RUNNING:
            resources = dict(job.resources)
            for key, value in counts.items():
                resources[key] = resources.get(key, 0) + value
            self._put(replace(job, resources=resources))

    async def unfinished_for_connection(self, connection_id: str) -> list[ImportJob]:
        return [
            job
            for job in self.jobs.values()
            if job.connection_id == connection_id and job.status in _UNFINISHED
        ]

    async def needing_attention(
        self, now: datetime, *, queued_before: datetime | None = None
    ) -> list[ImportJob]:
        return [
            job
            for job in self.jobs.values()
            if (
                queued_before is not None
                and job.status is ImportStatus.QUEUED
                and job.created_at < queued_before
            )
            or job.status is ImportStatus.RUNNING
            or (job.status is ImportStatus.FINALIZING and self._leases.get(job.import_id, _EPOCH) < now)
            or (job.status.terminal and not job.outcome_published)
        ]

    def _put(self, job: ImportJob) -> ImportJob:
        self.jobs[job.import_id] = job
        return job


@dataclass
class _Entry:
    page: PlannedPage
    status: PageStatus
    count_key: str
    objects: int = 0
    deferred_cancellations: list[str] = field(default_factory=list)
    cancellations: int = 0
    published_at: datetime = _EPOCH


class InMemoryPageLedger:
    def __init__(self) -> None:
        self.pages: dict[str, _Entry] = {}
        #: Makes the next ``complete`` raise after (``after``) or before (``before``) its atomic step.
        self.fail_next_complete: str | None = None

    async def add_roots(self, pages: Sequence[LedgerPage], now: datetime) -> None:
        for page in pages:
            self.pages.setdefault(
                page.page.page_id, _Entry(page.page, page.status, page.count_key, published_at=now)
            )

    async def get(self, page_id: str) -> LedgerPage | None:
        entry = self.pages.get(page_id)
        if entry is None:
            return None
        return LedgerPage(entry.page, entry.status, entry.count_key, entry.objects)

    async def complete(
        self,
        page_id: str,
        objects: int,
        children: Sequence[LedgerPage],
        now: datetime,
        *,
        deferred_cancellations: Sequence[str] = (),
        cancellations: int = 0,
    ) -> bool:
        if self.fail_next_complete == "before":
            self.fail_next_complete = None
            raise ConnectionError("the store went away before the page was marked done")
        entry = self.pages.get(page_id)
        if entry is None or entry.status is not PageStatus.PENDING:
            return False
        if any(child.page.page_id in self.pages for child in children):
            raise ValueError("a child page exists already")
        entry.status = PageStatus.DONE
        entry.objects = objects
        entry.deferred_cancellations = list(deferred_cancellations)
        entry.cancellations = cancellations
        for child in children:
            self.pages[child.page.page_id] = _Entry(
                child.page, PageStatus.PENDING, child.count_key, published_at=now
            )
        if self.fail_next_complete == "after":
            self.fail_next_complete = None
            raise ConnectionError("the answer to marking the page done was lost")
        return True

    async def claim_unpublished_children(
        self, import_id: str, page_id: str, published_before: datetime, now: datetime
    ) -> list[PlannedPage]:
        stale = [
            entry
            for entry in self.pages.values()
            if entry.page.parent_id == page_id
            and entry.status is PageStatus.PENDING
            and entry.published_at < published_before
        ]
        for entry in stale:
            entry.published_at = now
        return [entry.page for entry in stale]

    async def pending_roots(self, import_id: str) -> list[PlannedPage]:
        return [
            entry.page
            for entry in self.pages.values()
            if entry.page.import_id == import_id
            and entry.page.parent_id is None
            and entry.status is PageStatus.PENDING
        ]

    async def pending_count(self, import_id: str, resource: str | None = None) -> int:
        return sum(
            1
            for entry in self.pages.values()
            if entry.page.import_id == import_id
            and entry.status is PageStatus.PENDING
            and (resource is None or entry.page.resource == resource)
        )

    async def pending_estimates(self, import_id: str) -> list[tuple[str, float | None]]:
        return [
            (entry.page.resource, entry.page.estimated_pages)
            for entry in self.pages.values()
            if entry.page.import_id == import_id and entry.status is PageStatus.PENDING
        ]

    async def objects_by_count_key(self, import_id: str) -> dict[str, int]:
        totals: dict[str, int] = {}
        for entry in self.pages.values():
            if entry.page.import_id == import_id and entry.status is PageStatus.DONE:
                totals[entry.count_key] = totals.get(entry.count_key, 0) + entry.objects
        return totals

    async def page_cancellations(self, import_id: str) -> int:
        return sum(
            entry.cancellations
            for entry in self.pages.values()
            if entry.page.import_id == import_id and entry.status is PageStatus.DONE
        )

    async def deferred_cancellations(self, import_id: str, batch_size: int) -> AsyncIterator[list[str]]:
        keys = [
            key
            for entry in self.pages.values()
            if entry.page.import_id == import_id and entry.status is PageStatus.DONE
            for key in entry.deferred_cancellations
        ]
        for start in range(0, len(keys), batch_size):
            yield keys[start : start + batch_size]

    async def claim_stale(
        self, import_id: str, published_before: datetime, now: datetime, limit: int
    ) -> list[PlannedPage]:
        stale = [
            entry
            for entry in self.pages.values()
            if entry.page.import_id == import_id
            and entry.status is PageStatus.PENDING
            and entry.published_at < published_before
        ][:limit]
        for entry in stale:
            entry.published_at = now
        return [entry.page for entry in stale]


class InMemoryRecordStore:
    def __init__(self) -> None:
        #: collection → key → (record, import_id)
        self.collections: dict[str, dict[str, tuple[CanonicalRecord, str]]] = {}
        self.writes = 0

    async def write(
        self,
        import_id: str,
        records: Sequence[CanonicalRecord],
        now: datetime,
        *,
        began_at: datetime | None = None,
    ) -> None:
        self.writes += 1
        for record in records:
            self.collections.setdefault(record.collection, {})[record.key()] = (record, import_id)

    def records(self, collection: str) -> list[CanonicalRecord]:
        return [record for record, _ in self.collections.get(collection, {}).values()]

    async def subscriptions_by_key(self, keys: Sequence[str]) -> list[SubscriptionRecord]:
        stored = self.collections.get(SubscriptionRecord.collection, {})
        return [
            record
            for key in keys
            if key in stored
            for record in [stored[key][0]]
            if isinstance(record, SubscriptionRecord)
        ]

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]:
        return {
            record.object_id: record
            for record, _ in self.collections.get(CouponRecord.collection, {}).values()
            if isinstance(record, CouponRecord)
            and record.account_id == account_id
            and record.processor.value == processor
        }

    async def remove_cancellations_not_in(
        self, account_id: str, processor: str, import_id: str, *, began_at: datetime | None = None
    ) -> int:
        stored = self.collections.get(CancellationRecord.collection, {})
        stale = [
            key
            for key, (record, stamp) in stored.items()
            if record.account_id == account_id and record.processor.value == processor and stamp != import_id
        ]
        for key in stale:
            del stored[key]
        return len(stale)

    async def cancellations_page(
        self,
        account_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[tuple[datetime, str, CancellationRecord]]:
        rows = []
        for key, (record, _) in self.collections.get(CancellationRecord.collection, {}).items():
            if not isinstance(record, CancellationRecord) or record.account_id != account_id:
                continue
            at = record.canceled_at or record.ended_at or record.created_at or _EPOCH
            if (since is not None and at < since) or (until is not None and at >= until):
                continue
            if after is not None and (at, key) >= after:
                continue
            rows.append((at, key, record))
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return rows[:limit]

    async def subscriptions(self, account_id: str, processor: str) -> AsyncIterator[SubscriptionRecord]:
        for record, _ in list(self.collections.get(SubscriptionRecord.collection, {}).values()):
            if (
                isinstance(record, SubscriptionRecord)
                and record.account_id == account_id
                and record.processor.value == processor
            ):
                yield record

    async def subscription_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[SubscriptionRecord]]:
        batch: list[SubscriptionRecord] = []
        async for record in self.subscriptions(account_id, processor):
            dumped = record.model_dump()
            batch.append(SubscriptionRecord.model_validate({field: dumped[field] for field in fields}))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


#: The page requests' partitions, as many as ``importer.page-requests.v1`` has.
PAGE_REQUEST_PARTITIONS = 12


@dataclass
class AssignedPartitions:
    """The page-request partitions a test says this process's consumer owns."""

    assigned_partitions: frozenset[int] = frozenset()


class RecordingPublisher:
    """Keeps what would go to Kafka: import events, records, page requests (in order)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.records: list[CanonicalRecord] = []
        self.pages: list[tuple[str, PlannedPage]] = []
        #: Every page request sent, and the partition each went to (``None``: spread by page id).
        self.pages_sent: list[tuple[str, PlannedPage]] = []
        self.partitions: list[int | None] = []
        self.raw: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []

    async def publish_import_event(self, event: Event) -> None:
        self.events.append(event)

    async def publish_records(self, records: Sequence[CanonicalRecord]) -> None:
        self.records.extend(records)

    async def publish_pages(
        self, account_id: str, pages: Sequence[PlannedPage], *, partition: int | None = None
    ) -> None:
        self.pages.extend((account_id, page) for page in pages)
        self.pages_sent.extend((account_id, page) for page in pages)
        self.partitions.extend(partition for _ in pages)

    async def request_partition(self, page: PlannedPage) -> int:
        """A partition of the page id alone, the same on every run (Kafka's is murmur2's)."""
        return zlib.crc32(page.page_id.encode()) % PAGE_REQUEST_PARTITIONS

    async def send_raw(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.raw.append((topic, key, value, headers))

    def take_pages(self) -> list[tuple[str, PlannedPage]]:
        taken, self.pages = self.pages, []
        return taken

    def events_of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@dataclass
class InMemoryAnnouncedImports:
    """The connector's announcements: the last import it asked for, per account."""

    jobs: dict[str, ImportJob] = field(default_factory=dict)

    def announce(self, job: ImportJob) -> None:
        self.jobs[job.account_id] = replace(job, status=ImportStatus.QUEUED, started_at=None, resources={})

    async def latest(self, account_id: str) -> ImportJob | None:
        return self.jobs.get(account_id)


class InMemoryRecoveredRevenueSources:
    """Offers applied (as the offers.v1 projection keeps them) and the invoices of a record store."""

    def __init__(self, records: InMemoryRecordStore) -> None:
        self.records = records
        self.offers_by_id: dict[str, tuple[str, AppliedOfferRecord]] = {}

    async def record_offer(self, account_id: str, offer: AppliedOfferRecord) -> None:
        self.offers_by_id.setdefault(offer.offer_id, (account_id, offer))

    async def offers(self, account_id: str) -> list[AppliedOfferRecord]:
        return [offer for owner, offer in self.offers_by_id.values() if owner == account_id]

    async def invoice_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[InvoiceRecord]]:
        batch: list[InvoiceRecord] = []
        for record, _ in list(self.records.collections.get(InvoiceRecord.collection, {}).values()):
            if (
                isinstance(record, InvoiceRecord)
                and record.account_id == account_id
                and record.processor.value == processor
            ):
                dumped = record.model_dump()
                batch.append(InvoiceRecord.model_validate({field: dumped[field] for field in fields}))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch


class InMemoryLearnedLimitStore:
    """``LearnedLimitStore`` in a dict, with the Mongo store's rules (lower keeps the lower, replace
    only what was read, the other replicas' reports merged)."""

    def __init__(self) -> None:
        self.limits: dict[str, LearnedLimit] = {}
        self.senders: dict[str, dict[str, dict[str, Any]]] = {}

    async def report(
        self, account_key: str, sender: str, seconds: list[tuple[int, int]], now: float
    ) -> SharedView:
        senders = self.senders.setdefault(account_key, {})
        senders[sender] = {"at": now, "seconds": seconds}
        return SharedView(self.limits.get(account_key), others_seconds(senders, sender))

    async def lower(self, account_key: str, limit: LearnedLimit) -> LearnedLimit:
        stored = self.limits.get(account_key)
        if stored is not None and stored.per_min <= limit.per_min:
            limit = replace(stored, refused_at=max(stored.refused_at or 0.0, limit.refused_at or 0.0))
        self.limits[account_key] = limit
        return limit

    async def replace(self, account_key: str, expected: LearnedLimit | None, limit: LearnedLimit) -> bool:
        stored = self.limits.get(account_key)
        if (stored is None) != (expected is None) or (
            stored is not None
            and expected is not None
            and (stored.per_min, stored.refused_at) != (expected.per_min, expected.refused_at)
        ):
            return False
        self.limits[account_key] = limit
        return True
