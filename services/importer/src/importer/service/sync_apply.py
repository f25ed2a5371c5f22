"""Applying one changed object: re-read it, store it only over an older version, publish it.

An event's own copy of the object is never stored: events arrive late, twice and out of order, so
the object is read again from the processor and that read is what is stored, conditionally on the
stored record being older (``domain.sync.supersedes``). A deleted object leaves the store and gets
a tombstone on its ``billing.*`` topic. A subscription's cancellation follows the subscription: a
cancelled one is (re)derived, a reactivated or deleted one loses its cancellation (tombstone too).
An event needs no re-read of its own when one was sent after its change happened (``changed_before``)
and that apply finished: the stored record is then at least as new as the event (``sync_work``).
Distinct objects are applied at once, a bounded number per connection; one object's work goes one
at a time, in arrival order.
When many objects of one resource wait for a re-read (``domain.sync.worth_listing``: more than a few
times the pages that list the resource), they wait instead for one listing of the whole resource
(the import's paged list, read in parallel windows of creation time cut where the stored records
fall, ``domain.sync.list_windows``) started after their change (after this process took it in): each page is
the processor's current state of every object on it, stored with the same conditional write under
each object's own lock, so it covers them as a re-read would. An object the listing did not hold
(deleted, or created after the list passed it) is then re-read alone.
A Stripe product has no record of its own, but its prices and plans carry its name: its change
lists them by product (``domain.sync.dependents_of``) and stores them as a listing's pages.
What can fail: the processor (``SourceError``: retried by the consumer, then dead-lettered; the
next poll re-reads the object anyway), the store or the broker (the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Sequence
from datetime import datetime

from contracts.records import CancellationRecord, CanonicalRecord, SubscriptionRecord
from contracts.topics import billing_record_key

from importer.domain.cancellations import cancellation_of
from importer.domain.normalize import normalizer_for
from importer.domain.raw import text
from importer.domain.resources import windowable
from importer.domain.source import FetchedPage, NormalizationContext, RawObject, Window
from importer.domain.sync import (
    ObjectRef,
    SyncState,
    covered,
    dependents_of,
    list_windows,
    record_type_of,
    same_record_as,
    worth_listing,
)
from importer.domain.sync_ports import SyncReader
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_metrics import SYNC_OBJECTS
from importer.service.sync_work import Published, RecordKey

APPLIED = "applied"
DELETED = "deleted"
UNCHANGED = "unchanged"
IGNORED = "ignored"
#: No re-read: one sent after the event's change already brought the record to it (or further).
COVERED = "covered"
#: No re-read of its own: a listing of its resource, started after the change, read and applied it.
LISTED = "listed"


async def apply_object(
    deps: SyncDependencies,
    state: SyncState,
    reader: SyncReader,
    ref: ObjectRef,
    *,
    changed_before: datetime | None = None,
) -> str:
    """Bring the stored record of ``ref`` to the processor's current state; what happened.

    ``changed_before``: an instant (this process's clock) by which the change being applied had
    surely happened; a finished re-read sent at or after it makes this one unnecessary.
    """
    key = (state.connection_id, ref.resource, ref.object_id)
    work = deps.work
    outcome: str | None = None
    async with work.one_object(key):
        if covered(work.last_read(key), changed_before):
            outcome = COVERED
    if outcome is None:
        # A read sent from now on is sent after this process took the change in, so after the
        # change: it covers the change whatever the clocks say.
        taken_in = deps.clock()
        since = taken_in if changed_before is None else min(changed_before, taken_in)
        with work.waiting(key):
            listed = await _listed_since(deps, state, reader, ref.resource, since)
            async with work.one_object(key):
                if covered(work.last_read(key), since):
                    outcome = LISTED if listed else COVERED
                elif dependents := dependents_of(state.processor, ref.resource):
                    read_at = deps.clock()
                    outcome = await _apply_dependents(deps, state, reader, ref, dependents)
                    work.remember_read(key, read_at)
                else:
                    async with work.connection_slot(state.connection_id):
                        read_at = deps.clock()
                        outcome = await _apply(deps, state, reader, ref, read_at)
                    work.remember_read(key, read_at)
    SYNC_OBJECTS.labels(state.processor.value, outcome).inc()
    return outcome


async def _listed_since(
    deps: SyncDependencies, state: SyncState, reader: SyncReader, resource: str, since: datetime
) -> bool:
    """Whether a listing of ``resource`` that started at or after ``since`` has been applied,
    started (or joined) here when enough of its objects wait for a re-read."""
    record_type = record_type_of(resource)
    work = deps.work
    key = (state.connection_id, resource)
    if record_type is None or not worth_listing(work.waiting_objects(key), 0):
        return False  # few wait (fewer than a one-page resource would need): no count asked

    async def read() -> list[int]:
        return await deps.records.created_times(
            record_type.collection, state.account_id, state.processor.value
        )

    created = await work.known_created(key, read)
    if not worth_listing(work.waiting_objects(key), len(created)):
        return False

    async def run() -> None:
        await list_resource(deps, state, reader, resource, created=created)

    return await work.listed_since(key, since, deps.clock, run)


async def list_resource(
    deps: SyncDependencies,
    state: SyncState,
    reader: SyncReader,
    resource: str,
    *,
    created: Sequence[int] | None = None,
) -> int:
    """Read the resource's whole list and apply every object on it; how many pages it took.
    ``created``: the creation times of its stored records, when known (else read here).

    The list is read in windows of creation time at once (``reader.list_chains`` at most, cut where
    the stored records fall, so each holds about as many), each window a chain of pages through the
    same rate budget; one that fails stops the others and fails the listing."""
    windows = [Window()]
    record_type = record_type_of(resource)
    if record_type is not None and reader.list_chains > 1 and windowable(state.processor, resource):
        if created is None:
            created = await deps.records.created_times(
                record_type.collection, state.account_id, state.processor.value
            )
        windows = list_windows(created, reader.list_chains)
    chains = [
        asyncio.ensure_future(_list_window(deps, state, reader, resource, window)) for window in windows
    ]
    try:
        return sum(await asyncio.gather(*chains))
    finally:
        for chain in chains:  # one failed: the others stop too (a no-op for those done)
            chain.cancel()


async def _list_window(
    deps: SyncDependencies, state: SyncState, reader: SyncReader, resource: str, window: Window
) -> int:
    """Read one window of the list and apply every object on it; how many pages it took.

    Each page's objects are stored as read when that page's request was sent, and remembered as
    read then (covering what had happened before), once stored. The next page is fetched while
    one is applied."""
    read_at = deps.clock()
    fetching: asyncio.Future[FetchedPage] = asyncio.ensure_future(reader.list_page(resource, window, None))
    pages = 0
    try:
        while True:
            page = await fetching
            pages += 1
            page_read_at, read_at = read_at, deps.clock()
            if page.next_cursor is not None:
                fetching = asyncio.ensure_future(reader.list_page(resource, window, page.next_cursor))
            await _apply_page(deps, state, reader, resource, page.objects, read_at=page_read_at)
            if page.next_cursor is None:
                return pages
    finally:
        if not fetching.done():
            fetching.cancel()


async def _apply_dependents(
    deps: SyncDependencies, state: SyncState, reader: SyncReader, ref: ObjectRef, dependents: Sequence[str]
) -> str:
    """A product changed (renamed, archived, deleted): its prices and plans, which carry its name,
    are listed by it (every page) and stored as a listing's pages are. The product itself has no
    record. A deleted product's prices stay at Stripe, named after it no more: they are stored so.

    Each page's request holds one of the connection's slots (as a re-read does); its objects are
    applied after, under their own locks, so a slot is never held while waiting for one."""
    written = 0
    for resource in dependents:
        cursor: str | None = None
        while True:
            async with deps.work.connection_slot(state.connection_id):
                read_at = deps.clock()
                page = await reader.list_of_product(resource, ref.object_id, cursor)
            written += await _apply_page(deps, state, reader, resource, page.objects, read_at=read_at)
            cursor = page.next_cursor
            if cursor is None:
                break
    return APPLIED if written else UNCHANGED


async def _apply_page(
    deps: SyncDependencies,
    state: SyncState,
    reader: SyncReader,
    resource: str,
    objects: Sequence[RawObject],
    *,
    read_at: datetime,
) -> int:
    """Store a list page's objects as read at ``read_at``, each under its own apply lock (all of
    the page's at once), and remember them as read then. An object whose later read is already
    applied is skipped; a record this process last published with the same content, still stored
    at that version, only has its version moved on, without a write or a message; the others are
    written and published together."""
    listed: dict[str, RawObject] = {}
    for raw in objects:
        object_id = text(raw.get("id"))
        if object_id is not None and raw.get("deleted") is not True:
            listed[object_id] = raw
    work = deps.work
    keys = {object_id: (state.connection_id, resource, object_id) for object_id in sorted(listed)}
    async with contextlib.AsyncExitStack() as held:
        for key in keys.values():  # one order: two pages holding one object never wait on each other
            await held.enter_async_context(work.one_object(key))
        fresh = {
            object_id: raw
            for object_id, raw in listed.items()
            if (last_read := work.last_read(keys[object_id])) is None or last_read < read_at
        }  # the others: a read sent after this page's is already applied
        read = [
            (version, record)
            for object_id, raw in fresh.items()
            for version, records in [
                _normalized(state, reader, ObjectRef(resource, object_id), raw, read_at=read_at)
            ]
            for record in records
        ]
        same: list[tuple[CanonicalRecord, int, int]] = []
        pending: list[tuple[CanonicalRecord, int]] = []
        for version, record in read:
            known = work.published(_record_key(state, record))
            if known is not None and known.version <= version and known.digest == _digest(record):
                same.append((record, known.version, version))
            else:
                pending.append((record, version))
        if same and not await deps.records.move_versions(same):
            # One of them was written meanwhile, by another process; which is unknown: all are
            # written again (over older versions only).
            pending.extend((record, version) for record, _, version in same)
            same = []
        for record, _, version in same:
            work.remember_published(_record_key(state, record), Published(version, _digest(record)))
        stored = await deps.records.put_many(pending, read_at)
        written = [pair for pair, done in zip(pending, stored, strict=True) if done]
        for record, version in list(written):
            if isinstance(record, SubscriptionRecord):
                written.extend(
                    (follows, version) for follows in await _follow_cancellation(deps, record, version)
                )
        await _publish(deps, state, written)
        for object_id in fresh:
            work.remember_read(keys[object_id], read_at)
    return len(written)


def _record_key(state: SyncState, record: CanonicalRecord) -> RecordKey:
    return (state.connection_id, record.collection, record.key())


def _digest(record: CanonicalRecord) -> bytes:
    return hashlib.blake2b(record.model_dump_json().encode(), digest_size=16).digest()


async def _apply(
    deps: SyncDependencies, state: SyncState, reader: SyncReader, ref: ObjectRef, read_at: datetime
) -> str:
    record_type = record_type_of(ref.resource)
    raw = await reader.retrieve(ref.resource, ref.object_id)
    if raw is None and (other := same_record_as(state.processor, ref.resource)) is not None:
        # A deleted Stripe plan whose price of the same id is still served (or the reverse): the
        # record is that object's now, not gone.
        ref = ObjectRef(other, ref.object_id)
        raw = await reader.retrieve(other, ref.object_id)
    if raw is None:
        if record_type is None:
            return IGNORED
        key = billing_record_key(state.account_id, state.processor.value, ref.object_id)
        removed = await _remove(deps, record_type.collection, record_type.topic, key)
        if record_type is SubscriptionRecord:
            removed |= await _remove(deps, CancellationRecord.collection, CancellationRecord.topic, key)
        return DELETED if removed else UNCHANGED
    return await _store(deps, state, reader, ref, raw, read_at=read_at)


def _normalized(
    state: SyncState, reader: SyncReader, ref: ObjectRef, raw: RawObject, *, read_at: datetime
) -> tuple[int, list[CanonicalRecord]]:
    """The object's records as read at ``read_at``, and the version of that read."""
    version = reader.version_of(raw, int(read_at.timestamp() * 1000))
    context = NormalizationContext(account_id=state.account_id, as_of=read_at)
    return version, list(normalizer_for(state.processor).normalize(ref.resource, raw, context))


async def _store(
    deps: SyncDependencies,
    state: SyncState,
    reader: SyncReader,
    ref: ObjectRef,
    raw: RawObject,
    *,
    read_at: datetime,
) -> str:
    """Store and publish the object as read at ``read_at``, unless a newer read of it is stored."""
    version, records = _normalized(state, reader, ref, raw, read_at=read_at)
    written = await _write(deps, records, version, read_at)
    await _publish(deps, state, written)
    return APPLIED if written else UNCHANGED


async def _write(
    deps: SyncDependencies, records: Sequence[CanonicalRecord], version: int, read_at: datetime
) -> list[tuple[CanonicalRecord, int]]:
    """Write the records read at ``version`` (each unless a newer read is stored), and a written
    subscription's cancellation after it; what was written, to be published."""
    written = [(record, version) for record in records if await deps.records.put(record, version, read_at)]
    for record, _ in list(written):
        if isinstance(record, SubscriptionRecord):
            written.extend(
                (follows, version) for follows in await _follow_cancellation(deps, record, version)
            )
    return written


async def _publish(
    deps: SyncDependencies, state: SyncState, written: Sequence[tuple[CanonicalRecord, int]]
) -> None:
    """Publish what was written, then remember it as published (what a later listing compares)."""
    if written:
        await deps.publisher.publish_records([record for record, _ in written])
        for record, version in written:
            deps.work.remember_published(_record_key(state, record), Published(version, _digest(record)))


async def _follow_cancellation(
    deps: SyncDependencies, subscription: SubscriptionRecord, version: int
) -> list[CanonicalRecord]:
    coupons = await deps.records.coupons(subscription.account_id, subscription.processor.value)
    cancellation = cancellation_of(subscription, coupons)
    if cancellation is None:
        await _remove(deps, CancellationRecord.collection, CancellationRecord.topic, subscription.key())
        return []
    stored = await deps.records.put(cancellation, version, deps.clock())
    return [cancellation] if stored else []


async def _remove(deps: SyncDependencies, collection: str, topic: str, key: str) -> bool:
    # The tombstone goes out before the record leaves the store: a crash in between leaves the
    # record, so the redelivered event removes it and publishes the tombstone again (harmless).
    if not await deps.records.has(collection, key):
        return False
    await deps.publisher.publish_tombstones([(topic, key)])
    await deps.records.remove(collection, key)
    return True
