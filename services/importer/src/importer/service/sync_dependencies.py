"""What the sync use cases work with, wired by the composition root (real adapters or fakes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from importer.domain.model import ImportJob, StartImport
from importer.domain.ports import Clock
from importer.domain.sync_ports import SyncPublisher, SyncReaders, SyncRecords, SyncStateStore
from importer.service.dependencies import utc_now
from importer.service.sync_work import SyncWork

#: Starts a fresh import (the pipeline's ``start_import``), for a sync beyond the event history.
StartFullImport = Callable[[StartImport], Awaitable[object]]
#: An import's job by id (the pipeline's import repository), to follow such an import.
ImportOf = Callable[[str], Awaitable[ImportJob | None]]


@dataclass(frozen=True, slots=True)
class SyncDependencies:
    states: SyncStateStore
    records: SyncRecords
    readers: SyncReaders
    publisher: SyncPublisher
    start_full_import: StartFullImport
    #: Follows the full import a sync beyond the event history waits for (``None``: not followed).
    import_of: ImportOf | None = None
    #: ``SYNC_INTERVAL_S``: how often each account's event list is read.
    interval_s: float = 60.0
    clock: Clock = field(default=utc_now)
    #: This process's sync work in flight (one apply per object at a time, the last re-reads).
    work: SyncWork = field(default_factory=SyncWork)
