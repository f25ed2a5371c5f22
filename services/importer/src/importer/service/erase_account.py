"""Use case: erase every stored record of an account's processor data, a tombstone for each, then
``AccountDataErased`` (SPEC "Connection lifecycle", ``DELETE …/connection?erase=true``).

Batches by ``_id``, bounded, so a million records never sit in memory. In each batch the tombstones
go out first and the records leave the store after, in one transaction with the job's count: a crash
before the deletion leaves the records, so the resumed erase publishes their tombstones again
(harmless: compaction keeps one), and never a deleted record without its tombstone; a crash after it
lost nothing, and the count moved with the deletion, so it stays exact across resumes. A repeated
request or a redelivery finds the job: erasing → resumed; erased → only the announcement again, the
same event (same ``event_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from contracts.events import AccountDataErased
from contracts.runtime.logging import get_logger

from importer.domain.erasure import (
    ERASED_COLLECTIONS,
    ConnectionEventPublisher,
    ErasureJob,
    ErasureStatus,
    ErasureStore,
    TombstonePublisher,
)
from importer.domain.ports import Clock

_log = get_logger(__name__)
ERASE_BATCH_SIZE: Final = 1000
#: An erase whose job has not moved this long is resumed by recovery (its runner died).
ERASE_STALLED_AFTER: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AccountErasure:
    store: ErasureStore
    tombstones: TombstonePublisher
    events: ConnectionEventPublisher
    clock: Clock
    batch_size: int = ERASE_BATCH_SIZE


async def erase_account(erasure: AccountErasure, account_id: str, connection_id: str) -> ErasureJob:
    """Erase (or go on erasing) the account's data for the connection's erase job; the job announced."""
    job = await erasure.store.begin(connection_id, account_id, erasure.clock())
    if job.status is ErasureStatus.ERASING:
        # Sync's state first: removing it stops the connection's sync (a poll or webhook finds none).
        await erasure.store.remove_derived(connection_id, job.account_id)
        # Each collection read once more from its start at the end: nothing written behind the cursor
        # (an import's last page landing late) is left.
        while await _erase_records(erasure, job) > 0:
            pass
        await erasure.store.remove_derived(connection_id, job.account_id)
        finished = await erasure.store.finish(connection_id, erasure.clock())
        if finished is None:
            raise RuntimeError(f"the erase job of {connection_id} disappeared")
        job = finished
    if job.status is not ErasureStatus.ERASING:
        await erasure.events.publish_connection_event(
            AccountDataErased(
                event_id=job.event_id,
                account_id=job.account_id,
                connection_id=job.connection_id,
                records_erased=job.records_erased,
            )
        )
        if job.status is ErasureStatus.ERASED:
            await erasure.store.announced(connection_id, erasure.clock())
        _log.info(
            "account.erased",
            account_id=job.account_id,
            connection_id=connection_id,
            records_erased=job.records_erased,
        )
    return job


async def _erase_records(erasure: AccountErasure, job: ErasureJob) -> int:
    """One pass over the six collections; how many records it found."""
    found = 0
    for collection, topic in ERASED_COLLECTIONS:
        async for keys in erasure.store.keys(collection, job.account_id, erasure.batch_size):
            found += len(keys)
            await erasure.tombstones.publish_tombstones([(topic, key) for key in keys])
            await erasure.store.remove(job.connection_id, collection, keys, erasure.clock())
    return found


async def resume_stalled_erasures(erasure: AccountErasure, *, limit: int = 10) -> int:
    """Finish the erase jobs whose runner died (recovery); how many."""
    stalled = await erasure.store.unfinished(erasure.clock() - ERASE_STALLED_AFTER, limit)
    for job in stalled:
        _log.warning("account.erase_resumed", account_id=job.account_id, connection_id=job.connection_id)
        await erase_account(erasure, job.account_id, job.connection_id)
    return len(stalled)
