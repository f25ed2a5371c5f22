"""The ports sync works through: the processor's event list and objects, records, state, Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from contracts.connections import StoredConnection
from contracts.records import CanonicalRecord, CouponRecord
from contracts.sync import CredentialsLost

from importer.domain.source import FetchedPage, RawObject, Window
from importer.domain.sync import EventSweep, ListedEvents, SyncState


class SyncReader(Protocol):
    """Reads one connected account's changes, within the sync share of its rate budget."""

    async def events_since(self, cursor_s: int, *, after: str | None = None) -> ListedEvents:
        """The events created at or after ``cursor_s`` (any order), up to the poll's cap of pages;
        with ``after`` (a newest-first list cut before), those listed after that event (older ones)
        only. Raises ``SourceError``."""
        ...

    async def list_of_product(self, resource: str, product_id: str, cursor: str | None) -> FetchedPage:
        """One page of the resource's list holding only the objects of ``product_id`` (Stripe's
        prices or plans of one product), expanded as the import reads them, from ``cursor``
        (``None``: the first page); only asked for ``domain.sync.dependents_of`` resources."""
        ...

    async def retrieve(self, resource: str, object_id: str) -> RawObject | None:
        """The object as it is now; ``None`` when it is gone (deleted)."""
        ...

    async def list_page(self, resource: str, window: Window, cursor: str | None) -> FetchedPage:
        """One page of the resource's list as it is now (the import's paged list, every object
        created in ``window``, ``LIST_PAGE_SIZE`` a page), from ``cursor`` (``None``: the window's
        first page). A resource that cannot be windowed (``domain.resources.windowable``) is only
        asked for the whole line."""
        ...

    @property
    def list_chains(self) -> int:
        """Windows of one list read at once: as many as the list endpoint's rate keeps busy."""
        ...

    def version_of(self, raw: RawObject, read_at_ms: int) -> int:
        """The version of a read: the processor's own (Chargebee), else the instant of the read."""
        ...


class SyncReaders(Protocol):
    async def reader_for(self, connection_id: str, account_id: str) -> SyncReader:
        """The connection's reader; ``SourceUnavailable`` when it is not connected any more."""
        ...

    async def connection(self, connection_id: str) -> StoredConnection | None:
        """The stored connection as it is now (its status says whether it may be synced)."""
        ...

    def forget(self, connection_id: str) -> None:
        """Drop the connection's reader now: its credentials were replaced, refused or destroyed."""
        ...


class SyncRecords(Protocol):
    """The canonical collections, written conditionally on the version of what is stored."""

    async def put(self, record: CanonicalRecord, version: int, now: datetime) -> bool:
        """Store ``record`` unless a newer version is stored (``domain.sync.supersedes``); whether it
        was written (an equal version is written again: a redelivery publishes it again)."""
        ...

    async def put_many(self, records: Sequence[tuple[CanonicalRecord, int]], now: datetime) -> list[bool]:
        """:meth:`put` of each record at its version, together; whether each was written."""
        ...

    async def move_versions(self, moves: Sequence[tuple[CanonicalRecord, int, int]]) -> bool:
        """For each ``(record, known, newer)``: the stored record's version becomes ``newer`` where
        it is still ``known`` (nothing else is written); whether every one of them was."""
        ...

    async def has(self, collection: str, key: str) -> bool: ...

    async def created_times(self, collection: str, account_id: str, processor: str) -> list[int]:
        """The creation times (Unix seconds) of the account's processor data the collection holds,
        in any order (records without one left out)."""
        ...

    async def remove(self, collection: str, key: str) -> bool:
        """Remove a record; whether there was one."""
        ...

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]: ...


class SyncPublisher(Protocol):
    async def publish_records(self, records: Sequence[CanonicalRecord]) -> None: ...

    async def publish_tombstones(self, keys: Sequence[tuple[str, str]]) -> None:
        """A null value for each ``(topic, key)``: compaction then forgets the record."""
        ...

    async def publish_ticks(self, states: Sequence[SyncState]) -> None:
        """One poll request per state on the sync topic, keyed by its processor account."""
        ...

    async def report_credentials_lost(self, report: CredentialsLost) -> None:
        """Tell the connector the connection's credentials are dead; returns once the broker has it."""
        ...


class SyncStateStore(Protocol):
    """The ``sync_state`` collection: one document per connection."""

    async def begin(self, state: SyncState, now: datetime, interval_s: float) -> None:
        """After an import completed: sync from ``state``'s cursor, due now (replaces what was)."""
        ...

    async def get(self, connection_id: str) -> SyncState | None: ...

    async def running_for(self, processor: str, processor_account_id: str) -> list[SyncState]:
        """The syncs of a processor account that are not stopped."""
        ...

    async def claim_due(self, now: datetime, interval_s: float, limit: int) -> list[SyncState]:
        """Syncs due for a poll, each moved to its next due time by one conditional update (so
        of several processes exactly one claims it)."""
        ...

    async def record_poll(
        self,
        connection_id: str,
        *,
        cursor_s: int,
        applied_ids: Sequence[str],
        last_event_at: datetime | None,
        synced_through: datetime | None,
        sweep: EventSweep | None,
        now: datetime,
    ) -> None:
        """A poll's objects are applied: the cursor (and the sweep under way, if any) for the next
        one; ``synced_through`` (and the status ``live``) only move when given."""
        ...

    async def record_applied(self, connection_id: str, event_id: str, created: datetime) -> None:
        """A webhook's event was applied: the next poll skips it."""
        ...

    async def catch_up_with_import(self, connection_id: str, import_id: str, now: datetime) -> None: ...

    async def stop(self, connection_id: str, reason: str, now: datetime) -> bool: ...

    async def remove(self, connection_id: str) -> bool:
        """Delete the connection's sync state (it was disconnected); whether there was one."""
        ...

    async def resume(self, connection_id: str, now: datetime, interval_s: float) -> bool:
        """After a reconnect: poll again from the stored cursor, due now; ``False`` when the
        connection has no sync to resume."""
        ...

    async def lag_summary(self) -> tuple[int, datetime | None]:
        """How many syncs run, and the oldest instant up to which one of them is applied (a sync
        not yet polled counts from when it started)."""
        ...
