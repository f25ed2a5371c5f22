"""What the use cases work on: an import job, its pages in the ledger, and the events they lead to."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from contracts.events import (
    ImportCompleted,
    ImportFailed,
    ImportProgressed,
    ImportStarted,
    Mode,
    Processor,
    ResourceCount,
)

from importer.domain.planning import PlannedPage
from importer.domain.source import SourceErrorCode

#: Namespace of the deterministic event ids: a re-published outcome is the same event, and
#: consumers, idempotent on ``event_id``, act on it once.
_EVENT_NAMESPACE: Final = uuid.UUID("6f1d7f64-2b7e-4f0c-9a55-1b0f3f6f2a11")


class ImportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    #: Every page is done; one process derives cancellations and counts. Shown as ``running``.
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (ImportStatus.COMPLETED, ImportStatus.FAILED)

    @property
    def public(self) -> str:
        return ImportStatus.RUNNING.value if self is ImportStatus.FINALIZING else self.value


class FailureCode(StrEnum):
    """Codes of ``ImportFailed`` besides the processor's own (:class:`SourceErrorCode`)."""

    CONNECTION_UNAVAILABLE = "connection_unavailable"  # no connected connection, or no credentials
    DISCONNECTED = "disconnected"  # the user disconnected the processor while it ran
    START_FAILED = "start_failed"  # the import could not be planned within its retries
    PAGE_FAILED = "page_failed"  # a page could not be imported within its retries
    MALFORMED_OBJECT = "malformed_object"  # the processor served an object we cannot read
    #: The processor answered 401 to the stored credentials: the connector makes the connection
    #: ``needs_reconnect`` when it reads this code.
    CREDENTIALS_REJECTED = "credentials_rejected"
    #: The connection lost its credentials (``ConnectionLost``) while the import was unfinished.
    DEAUTHORIZED = "deauthorized"


def failure_code_of(code: SourceErrorCode) -> str:
    """The ``ImportFailed`` code of a processor's refusal: a 401 (``key_rejected``) means the
    stored credentials stopped working, which the connection's lifecycle acts on by its own name."""
    if code is SourceErrorCode.KEY_REJECTED:
        return FailureCode.CREDENTIALS_REJECTED.value
    return code.value


@dataclass(frozen=True, slots=True)
class ImportJob:
    """One import: a document of the ``imports`` collection."""

    import_id: str
    account_id: str
    connection_id: str
    processor: Processor
    contact_email: str
    status: ImportStatus
    created_at: datetime
    mode: Mode | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Objects imported per resource (``count_key``): live while running, exact once completed.
    resources: Mapping[str, int] = field(default_factory=dict)
    past_cancellations: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: The connection's credentials the processor refused (``credentials_rejected``), by version.
    error_credentials_version: int | None = None
    #: Crash-safety flags: each step that publishes is redone until its flag is set.
    pages_published: bool = False
    started_published: bool = False
    outcome_published: bool = False

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, once both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class PageStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class LedgerPage:
    """A page as the ledger holds it."""

    page: PlannedPage
    status: PageStatus
    count_key: str
    objects: int = 0


@dataclass(frozen=True, slots=True)
class StartImport:
    """Start (or, redelivered, resume) the import of a connection."""

    import_id: str
    account_id: str
    connection_id: str
    processor: Processor
    contact_email: str
    mode: Mode | None = None

    def queued_job(self, created_at: datetime) -> ImportJob:
        """The job this command creates: queued until its start is handled."""
        return ImportJob(
            import_id=self.import_id,
            account_id=self.account_id,
            connection_id=self.connection_id,
            processor=self.processor,
            contact_email=self.contact_email,
            mode=self.mode,
            status=ImportStatus.QUEUED,
            created_at=created_at,
        )


def event_id(import_id: str, kind: str) -> uuid.UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{import_id}:{kind}")


def counts(resources: Mapping[str, int]) -> dict[str, ResourceCount]:
    return {key: ResourceCount(imported=value) for key, value in sorted(resources.items())}


def started_event(job: ImportJob) -> ImportStarted:
    return ImportStarted(
        event_id=event_id(job.import_id, "started"),
        account_id=job.account_id,
        import_id=job.import_id,
        processor=job.processor,
    )


def progressed_event(job: ImportJob, resources: Mapping[str, int]) -> ImportProgressed:
    return ImportProgressed(account_id=job.account_id, import_id=job.import_id, resources=counts(resources))


def completed_event(job: ImportJob) -> ImportCompleted:
    if job.started_at is None or job.finished_at is None:
        raise ValueError(f"import {job.import_id} is not finished")
    return ImportCompleted(
        event_id=event_id(job.import_id, "completed"),
        occurred_at=job.finished_at,
        account_id=job.account_id,
        import_id=job.import_id,
        processor=job.processor,
        resources=counts(job.resources),
        past_cancellations=job.past_cancellations or 0,
        started_at=job.started_at,
        finished_at=job.finished_at,
        contact_email=job.contact_email,
    )


def failed_event(job: ImportJob) -> ImportFailed:
    return ImportFailed(
        event_id=event_id(job.import_id, "failed"),
        occurred_at=job.finished_at or job.created_at,
        account_id=job.account_id,
        import_id=job.import_id,
        code=job.error_code or FailureCode.PAGE_FAILED.value,
        message=job.error_message or "the import could not finish",
        contact_email=job.contact_email,
        processor=job.processor,
        credentials_version=job.error_credentials_version,
    )
