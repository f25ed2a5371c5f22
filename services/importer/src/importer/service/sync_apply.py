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
What can fail: the processor (``SourceError``: retried by the consumer, then dead-lettered; the
next poll re-reads the object anyway), the store or the broker (the same).
"""

from __future__ import annotations

from datetime import datetime

from contracts.records import CancellationRecord, CanonicalRecord, SubscriptionRecord
from contracts.topics import billing_record_key

from importer.domain.cancellations import cancellation_of
from importer.domain.normalize import normalizer_for
from importer.domain.source import NormalizationContext
from importer.domain.sync import ObjectRef, SyncState, record_type_of
from importer.domain.sync_ports import SyncReader
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_metrics import SYNC_OBJECTS

APPLIED = "applied"
DELETED = "deleted"
UNCHANGED = "unchanged"
IGNORED = "ignored"
#: No re-read: one sent after the event's change already brought the record to it (or further).
COVERED = "covered"


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
    async with work.one_object(key):
        last_read = work.last_read(key)
        if changed_before is not None and last_read is not None and last_read >= changed_before:
            outcome = COVERED
        else:
            async with work.connection_slot(state.connection_id):
                read_at = deps.clock()
                outcome = await _apply(deps, state, reader, ref, read_at)
            work.remember_read(key, read_at)
    SYNC_OBJECTS.labels(state.processor.value, outcome).inc()
    return outcome


async def _apply(
    deps: SyncDependencies, state: SyncState, reader: SyncReader, ref: ObjectRef, read_at: datetime
) -> str:
    record_type = record_type_of(ref.resource)
    raw = await reader.retrieve(ref.resource, ref.object_id)
    if raw is None:
        if record_type is None:
            return IGNORED
        key = billing_record_key(state.account_id, state.processor.value, ref.object_id)
        removed = await _remove(deps, record_type.collection, record_type.topic, key)
        if record_type is SubscriptionRecord:
            removed |= await _remove(deps, CancellationRecord.collection, CancellationRecord.topic, key)
        return DELETED if removed else UNCHANGED
    version = reader.version_of(raw, int(read_at.timestamp() * 1000))
    context = NormalizationContext(account_id=state.account_id, as_of=read_at)
    records = normalizer_for(state.processor).normalize(ref.resource, raw, context)
    written: list[CanonicalRecord] = [
        record for record in records if await deps.records.put(record, version, read_at)
    ]
    for record in written:
        if isinstance(record, SubscriptionRecord):
            written.extend(await _follow_cancellation(deps, record, version))
    if written:
        await deps.publisher.publish_records(written)
    return APPLIED if written else UNCHANGED


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
