"""Erasing an account's processor data (SPEC "Connection lifecycle"): the job and what it works through.

An erase is a job stored in the importer's store, one per connection, so that a crash, a redelivery
or a second request resumes or repeats it instead of starting over: ``erasing`` until every record is
gone, ``erased`` with the exact count, ``announced`` once ``AccountDataErased`` is out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol
from uuid import UUID

from contracts.events import Event
from contracts.records import RECORD_TYPES

#: The six collections of SPEC "Stored data", with the ``billing.*`` topic of each.
ERASED_COLLECTIONS: Final = tuple((record_type.collection, record_type.topic) for record_type in RECORD_TYPES)


class ErasureStatus(StrEnum):
    ERASING = "erasing"
    ERASED = "erased"
    ANNOUNCED = "announced"


@dataclass(frozen=True, slots=True)
class ErasureJob:
    connection_id: str
    account_id: str
    status: ErasureStatus
    #: Documents removed from the six collections so far (exact: counted with each removal).
    records_erased: int
    requested_at: datetime
    #: The ``event_id`` of its ``AccountDataErased``: a repeated announcement is the same event.
    event_id: UUID


class ErasureStore(Protocol):
    """The erase jobs and the account's stored data, in batches by ``_id``."""

    async def begin(self, connection_id: str, account_id: str, now: datetime) -> ErasureJob:
        """The connection's erase job, created ``erasing`` unless one exists (then as it is)."""
        ...

    def keys(self, collection: str, account_id: str, batch_size: int) -> AsyncIterator[list[str]]:
        """The keys of the account's records in ``collection``, ascending, from one cursor read
        ``batch_size`` at a time (a batch may be deleted before the next is read)."""
        ...

    async def remove(self, connection_id: str, collection: str, keys: Sequence[str], now: datetime) -> int:
        """Delete those records and add how many were deleted to the job's count, atomically; that
        number (records another remover took first count there, not here)."""
        ...

    async def remove_derived(self, connection_id: str, account_id: str) -> None:
        """The importer's own data holding the account's processor data: sync state, page
        ledgers, applied offers."""
        ...

    async def finish(self, connection_id: str, now: datetime) -> ErasureJob | None:
        """``erasing`` → ``erased``; the job as it is now (``None``: unknown)."""
        ...

    async def announced(self, connection_id: str, now: datetime) -> None:
        """``erased`` → ``announced``."""
        ...

    async def unfinished(self, updated_before: datetime, limit: int) -> list[ErasureJob]:
        """Jobs not announced and left alone since ``updated_before`` (their runner died)."""
        ...


class TombstonePublisher(Protocol):
    async def publish_tombstones(self, keys: Sequence[tuple[str, str]]) -> None:
        """A null value for each ``(topic, key)``; returns once the broker has them all."""
        ...


class ConnectionEventPublisher(Protocol):
    async def publish_connection_event(self, event: Event) -> None:
        """On ``connections.v1``."""
        ...
