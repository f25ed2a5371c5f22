"""The ports the use cases need: the store (imports, page ledger, records), Kafka, processor sources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from contracts.events import Event
from contracts.records import CancellationRecord, CanonicalRecord, CouponRecord, SubscriptionRecord

from importer.domain.churn import ChurnSummary, SubscriptionShare
from importer.domain.model import ImportJob, ImportStatus, LedgerPage
from importer.domain.planning import PlannedPage
from importer.domain.source import ProcessorSource

Clock = Callable[[], datetime]


class AnnouncedImports(Protocol):
    """The imports the connector announced (its ``connections`` documents), whether or not the
    importer has consumed their events yet."""

    async def latest(self, account_id: str) -> ImportJob | None:
        """The import the connector asked for last for the account, as a ``queued`` job."""
        ...


class ImportRepository(Protocol):
    """The ``imports`` collection. Every transition is one conditional update: one caller wins it."""

    async def create(self, job: ImportJob) -> bool:
        """Insert ``job``; ``False`` when an import with that id exists already."""
        ...

    async def get(self, import_id: str) -> ImportJob | None: ...

    async def latest_for_account(
        self, account_id: str, status: ImportStatus | None = None
    ) -> ImportJob | None: ...

    async def writing_since(self, account_id: str, instant: datetime) -> bool:
        """Whether an import of the account is writing records (running or finalizing) or ended
        after ``instant``: what it wrote may postdate a reading of the records started then."""
        ...

    async def mark_running(
        self,
        job: ImportJob,
        now: datetime,
        resources: Mapping[str, int] | None = None,
    ) -> ImportJob | None:
        """``queued`` → ``running`` with its counts at zero; the job as it is now, or ``None`` when it
        was not queued or another import of its connection is running or finalizing (one at a time:
        this one stays queued until that one ends)."""
        ...

    async def set_flag(self, import_id: str, flag: str) -> None:
        """Record that a publishing step happened (``pages_published``, ``started_published`` ...)."""
        ...

    async def fail(
        self,
        import_id: str,
        code: str,
        message: str,
        now: datetime,
        *,
        credentials_version: int | None = None,
    ) -> ImportJob | None:
        """Any unfinished status → ``failed``; the failed job when this call failed it, else ``None``."""
        ...

    async def claim_finalization(self, import_id: str, now: datetime, lease_s: float) -> ImportJob | None:
        """``running`` (or ``finalizing`` whose lease ran out) → ``finalizing`` for ``lease_s``."""
        ...

    async def complete(
        self, import_id: str, resources: Mapping[str, int], past_cancellations: int, now: datetime
    ) -> ImportJob | None:
        """``finalizing`` → ``completed`` with the exact counts; ``None`` when it was not finalizing."""
        ...

    async def claim_progress(self, import_id: str, now: datetime, interval_s: float) -> bool:
        """Whether this caller may report progress now (at most once per ``interval_s``)."""
        ...

    async def add_progress(self, import_id: str, counts: Mapping[str, int]) -> None:
        """Add finished pages' objects to the running counts (no-op once not running)."""
        ...

    async def unfinished_for_connection(self, connection_id: str) -> list[ImportJob]: ...

    async def needing_attention(
        self, now: datetime, *, queued_before: datetime | None = None
    ) -> list[ImportJob]:
        """Imports a crash may have left behind: running, finalizing with an expired lease, or
        finished without their outcome published; and those queued since before ``queued_before``
        (waiting for another import of their connection to end)."""
        ...


class PageLedger(Protocol):
    """The ``import_pages`` collection: every planned page, ``pending`` until its records are stored."""

    async def add_roots(self, pages: Sequence[LedgerPage], now: datetime) -> None:
        """Insert an import's first pages; those that exist already are left as they are."""
        ...

    async def get(self, page_id: str) -> LedgerPage | None: ...

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
        """In one atomic step: ``pending`` → ``done`` with the page's counts (objects, cancellations
        it derived) and the keys of the cancelled subscriptions whose cancellation awaits completion,
        and its children inserted as pending. ``False`` (nothing changed) when it was not pending."""
        ...

    async def claim_unpublished_children(
        self, import_id: str, page_id: str, published_before: datetime, now: datetime
    ) -> list[PlannedPage]:
        """The page's pending children last published before ``published_before`` (a crash may have
        kept them from being published at all), re-stamped as published now."""
        ...

    async def pending_roots(self, import_id: str) -> list[PlannedPage]: ...

    async def pending_count(self, import_id: str, resource: str | None = None) -> int: ...

    async def pending_estimates(self, import_id: str) -> list[tuple[str, float | None]]:
        """Each pending page's resource and estimated pages left in its window."""
        ...

    async def objects_by_count_key(self, import_id: str) -> dict[str, int]:
        """Objects fetched per count key, over the pages done: each page is done exactly once."""
        ...

    def deferred_cancellations(self, import_id: str, batch_size: int) -> AsyncIterator[list[str]]:
        """Keys of the cancelled subscriptions whose cancellation awaits completion, in batches."""
        ...

    async def page_cancellations(self, import_id: str) -> int:
        """Cancellations the import's pages derived as they went."""
        ...

    async def claim_stale(
        self, import_id: str, published_before: datetime, now: datetime, limit: int
    ) -> list[PlannedPage]:
        """Pending pages last published before ``published_before``, re-stamped as published now."""
        ...


class RecordStore(Protocol):
    """The canonical record collections (``customers``, ``subscriptions`` ...)."""

    async def write(
        self,
        import_id: str,
        records: Sequence[CanonicalRecord],
        now: datetime,
        *,
        began_at: datetime | None = None,
    ) -> None:
        """Store ``records`` stamped with ``import_id``; one already stored is replaced, unless sync
        wrote it from a read made after ``began_at`` (the import's start): sync then holds a copy at
        least as new as the import's may be, and applies every later change itself."""
        ...

    async def subscriptions_by_key(self, keys: Sequence[str]) -> list[SubscriptionRecord]: ...

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]: ...

    async def remove_cancellations_not_in(
        self, account_id: str, processor: str, import_id: str, *, began_at: datetime | None = None
    ) -> int:
        """Drop the cancellations an earlier import derived that this one did not (reactivated),
        except those sync wrote from a read made after ``began_at`` (the import's start): they are
        the processor's state since, and this import's copy was left to them (:meth:`write`)."""
        ...


class EventPublisher(Protocol):
    async def publish_import_event(self, event: Event) -> None: ...


class RecordPublisher(Protocol):
    async def publish_records(self, records: Sequence[CanonicalRecord]) -> None:
        """Publish on the records' ``billing.*`` topics; returns once the broker has them all."""
        ...


class PageRequestPublisher(Protocol):
    async def publish_pages(
        self, account_id: str, pages: Sequence[PlannedPage], *, partition: int | None = None
    ) -> None:
        """Request the pages; on ``partition`` if given (a chain continuing where its page was
        handled), else spread by page id. Returns once the broker has them all."""
        ...

    async def request_partition(self, page: PlannedPage) -> int:
        """The partition the page's request goes to when spread by page id."""
        ...


class PagePartitions(Protocol):
    """The partitions of the page requests' topic this process consumes now (its consumer's
    assignment): a request sent to one of them is handled here, unless a rebalance moves it."""

    @property
    def assigned_partitions(self) -> frozenset[int]: ...


class SourceUnavailable(Exception):
    """The import's connection cannot be read any more: disconnected, or its credentials are gone."""


class SourceProvider(Protocol):
    async def source_for(self, job: ImportJob) -> ProcessorSource:
        """The source reading the job's connection (shared by the job's pages in this process)."""
        ...

    def forget(self, connection_id: str) -> None:
        """Let go of the connection's source and the credentials it holds (it was disconnected)."""
        ...

    async def replaced_since(self, job: ImportJob, refused_version: int | None) -> bool:
        """Whether the job's connection holds newer credentials than the ones a processor refused
        (``refused_version``: a source built before a reconnect); if so its source is dropped, so
        the next attempt reads with the stored ones."""
        ...


class RecordQueries(Protocol):
    """Reads behind the HTTP API."""

    async def cancellations_page(
        self,
        account_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[tuple[datetime, str, CancellationRecord]]:
        """Up to ``limit`` cancellations newest first, each with its sort position (time, key),
        starting after the position ``after``."""
        ...

    def subscriptions(self, account_id: str, processor: str) -> AsyncIterator[SubscriptionRecord]: ...

    def subscription_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[SubscriptionRecord]]:
        """The account's subscriptions at the processor in batches of up to ``batch_size``, each
        record carrying only ``fields`` (the others at their defaults)."""
        ...

    async def subscriptions_by_key(self, keys: Sequence[str]) -> list[SubscriptionRecord]:
        """The stored subscriptions of these keys (``account_id:processor:object_id``)."""
        ...

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]: ...


@dataclass(frozen=True, slots=True)
class StoredChurn:
    """An account's churn summary as stored, with what tells whether it is current."""

    #: The version of the account's churn inputs (subscriptions, coupons) now: every write of one of
    #: them by sync moves it on.
    inputs_version: int
    #: The summary, built from the inputs at ``built_at_version``, reading from ``built_from`` on;
    #: ``None`` before the first one.
    summary: ChurnSummary | None = None
    built_at_version: int | None = None
    built_from: datetime | None = None
    #: The build whose shares (what each subscription added, by customer) are stored beside it,
    #: in this many buckets of each kind.
    build_id: str | None = None
    buckets: int | None = None


@dataclass(frozen=True, slots=True)
class ChurnInputsChange:
    """One move of an account's inputs version: the subscriptions it wrote or removed (object ids),
    and whether it wrote a coupon."""

    version: int
    subscription_ids: tuple[str, ...]
    coupons: bool


class ChurnSummaries(Protocol):
    """The ``churn_summaries`` collection (one document per account and processor), the shares of
    each summary (``churn_shares``) and the changes since (``churn_changes``)."""

    async def read(self, account_id: str, processor: str) -> StoredChurn | None: ...

    async def inputs_version(self, account_id: str, processor: str) -> int:
        """The inputs' version now (the document created at 0 when there is none)."""
        ...

    async def save(
        self,
        account_id: str,
        processor: str,
        summary: ChurnSummary,
        shares: Mapping[str, Sequence[tuple[str, SubscriptionShare]]],
        *,
        version: int,
        built_from: datetime,
    ) -> bool:
        """Keep ``summary`` built at ``version`` and its ``shares`` (by customer), unless one built
        from a later instant is kept or the document is gone (an erasure); marks it settled when
        ``version`` is still the inputs'."""
        ...

    async def changes(
        self, account_id: str, processor: str, after: int, upto: int
    ) -> list[ChurnInputsChange]:
        """The changes that moved the inputs' version from ``after`` to ``upto``, in order (a change
        whose entry is not written yet is missing)."""
        ...

    async def customers_of(
        self, account_id: str, processor: str, stored: StoredChurn, subscription_ids: Set[str]
    ) -> dict[str, str]:
        """The customer the stored build counted each of ``subscription_ids`` under (those it counted).
        Raises ``LookupError`` when its shares are gone."""
        ...

    async def customer_shares(
        self, account_id: str, processor: str, stored: StoredChurn, customers: Set[str]
    ) -> dict[str, list[tuple[str, SubscriptionShare]]]:
        """What each subscription of ``customers`` added to the stored build's summary, by customer.
        Raises ``LookupError`` when its shares are gone."""
        ...

    async def inputs_changed(self, account_id: str, processor: str, now: datetime) -> None:
        """Move the inputs' version on (a change of no subscription in particular: an import) and mark
        the summary to rebuild (kept since the first change not yet rebuilt)."""
        ...

    async def claim_unsettled(
        self, changed_before: datetime, now: datetime, lease_s: float, limit: int
    ) -> list[tuple[str, str]]:
        """Accounts (and processors) whose inputs changed before ``changed_before`` and whose
        summary was not rebuilt since, each claimed for ``lease_s``."""
        ...
