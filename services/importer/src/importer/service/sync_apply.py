"""Applying one changed object: re-read it, store it only over an older version, publish it.

An event's own copy of the object is never stored: events arrive late, twice and out of order, so
the object is read again from the processor and that read is what is stored, conditionally on the
stored record being older (``domain.sync.supersedes``). A deleted object leaves the store and gets
a tombstone on its ``billing.*`` topic. A subscription's cancellation follows the subscription: a
cancelled one is (re)derived, a reactivated or deleted one loses its cancellation (tombstone too).
What can fail: the processor (``SourceError``: retried by the consumer, then dead-lettered; the
next poll re-reads the object anyway), the store or the broker (the same).
"""

from __future__ import annotations

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


async def apply_object(deps: SyncDependencies, state: SyncState, reader: SyncReader, ref: ObjectRef) -> str:
    """Bring the stored record of ``ref`` to the processor's current state; what happened."""
    outcome = await _apply(deps, state, reader, ref)
    SYNC_OBJECTS.labels(state.processor.value, outcome).inc()
    return outcome


async def _apply(deps: SyncDependencies, state: SyncState, reader: SyncReader, ref: ObjectRef) -> str:
    record_type = record_type_of(ref.resource)
    read_at = deps.clock()
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
