"""The seam between the import pipeline and a processor: one page of one resource at a time.

The pipeline plans windows over the ``created`` time line and carries :class:`PageQuery` values in
page-request messages on Kafka; a :class:`ProcessorSource` (Stripe or Chargebee, in ``adapters``)
answers each query with one :class:`FetchedPage`, and a :class:`Normalizer` turns the processor's
objects into canonical records. Sources pace themselves within the account's shared rate budget and
retry what is worth retrying; what they raise is a :class:`SourceError` with a code the user sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from contracts.records import CanonicalRecord

RawObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open range of creation times in Unix seconds: ``created_gte <= created < created_lt``.

    ``None`` on either side means unbounded. Objects sharing a timestamp belong to exactly one window.
    """

    created_gte: int | None = None
    created_lt: int | None = None

    def contains(self, created: int) -> bool:
        return (self.created_gte is None or created >= self.created_gte) and (
            self.created_lt is None or created < self.created_lt
        )


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page to fetch: a resource, a window of it, and where to continue inside the window.

    ``cursor`` is the processor's own continuation: Stripe's ``starting_after`` object id, Chargebee's
    ``next_offset``. ``None`` starts at the window's first page.
    """

    resource: str
    window: Window = field(default_factory=Window)
    cursor: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class FetchedPage:
    objects: Sequence[RawObject]
    #: Where the next page of the same window starts; ``None`` when the window is exhausted.
    next_cursor: str | None
    #: Creation times (Unix seconds) of the first and last object of the page, in the order served.
    first_created: int | None = None
    last_created: int | None = None


class SourceErrorCode(StrEnum):
    KEY_REJECTED = "key_rejected"  # 401: the credentials stopped working
    INSUFFICIENT_PERMISSIONS = "insufficient_permissions"  # 403: the user must grant access
    SITE_NOT_FOUND = "site_not_found"  # 404 on the site or account itself
    INVALID_REQUEST = "invalid_request"  # another 4xx: a defect of ours, never retried
    RATE_LIMITED = "rate_limited"  # 429 past the retry budget
    PROCESSOR_UNAVAILABLE = "processor_unavailable"  # 5xx, timeouts past the retry budget


class SourceError(Exception):
    """A page that could not be fetched; ``retryable`` says whether a later attempt may succeed."""

    def __init__(
        self,
        code: SourceErrorCode,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        status: int | None = None,
        credentials_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.status = status
        #: The connection's ``credentials_version`` the refused request used (a 401 reports it).
        self.credentials_version = credentials_version


class ProcessorSource(Protocol):
    """Reads one connected account of one processor."""

    def resources(self) -> Sequence[str]:
        """The resources this account's import copies, in the processor's own names."""
        ...

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        """One page, newest or oldest first as the processor serves it; raises :class:`SourceError`."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class NormalizationContext:
    account_id: str
    #: The instant the records describe (the import's start): a discount whose end the processor
    #: reports as passed by then no longer counts in MRR. ``None``: every listed discount counts.
    as_of: datetime | None = None


class Normalizer(Protocol):
    """Turns one processor object of a resource into canonical records (usually exactly one)."""

    def normalize(
        self, resource: str, raw: RawObject, context: NormalizationContext
    ) -> list[CanonicalRecord]: ...
