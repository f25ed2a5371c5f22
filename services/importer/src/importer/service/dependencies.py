"""Everything the use cases work with, wired once by the composition root (``importer.bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from importer.domain.planning import SlicingPolicy
from importer.domain.ports import (
    AnnouncedImports,
    ChurnSummaries,
    Clock,
    EventPublisher,
    ImportRepository,
    PageLedger,
    PageRequestPublisher,
    RecordPublisher,
    RecordQueries,
    RecordStore,
    SourceProvider,
)
from importer.domain.recovered_revenue import RecoveredRevenueSources
from importer.service.churn_summaries import ChurnSummaryKeeper
from importer.service.erase_account import AccountErasure
from importer.service.local_state import LocalState


def utc_now() -> datetime:
    return datetime.now(UTC)


#: Windows a Stripe import reads each growing resource through from its start (``plan_import``):
#: from the plan time back to 2010, ~98 days the newest, each older one twice as wide. Stripe's
#: limits are per endpoint, so these requests hold back no other resource. (Chargebee's are per
#: site: it starts with one window a resource.)
STRIPE_FIRST_WINDOWS: Final = 6


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs of the pipeline (from ``ImporterSettings``)."""

    #: How far an import fans out, by what the processor allows: Stripe live mode 25 requests/s per
    #: endpoint, test mode 10; Chargebee a few per second for the whole site.
    stripe_live_slicing: SlicingPolicy = field(
        default_factory=lambda: SlicingPolicy(first_windows=STRIPE_FIRST_WINDOWS)
    )
    stripe_test_slicing: SlicingPolicy = field(
        default_factory=lambda: SlicingPolicy(
            chains_per_resource=6, import_chains=14, first_windows=STRIPE_FIRST_WINDOWS
        )
    )
    chargebee_slicing: SlicingPolicy = field(
        default_factory=lambda: SlicingPolicy(chains_per_resource=2, import_chains=3)
    )
    progress_interval_s: float = 1.0
    #: How long after an import ended recovery publishes its outcome if nobody has yet.
    outcome_grace_s: float = 30.0
    #: How long a process may take to finalize before another may take over.
    finalize_lease_s: float = 120.0
    #: A pending page not handled this long after it was published is published again.
    stale_page_after_s: float = 300.0
    #: A redelivered request of a page already done publishes again those of its children still
    #: pending this long after they were published: a crash may have kept them from going out.
    republish_children_after_s: float = 5.0
    cancellation_batch_size: int = 500


@dataclass(frozen=True, slots=True)
class Dependencies:
    imports: ImportRepository
    ledger: PageLedger
    records: RecordStore
    events: EventPublisher
    record_publisher: RecordPublisher
    page_publisher: PageRequestPublisher
    sources: SourceProvider
    #: What the HTTP API reads: past cancellations and churn, the imports the connector announced,
    #: and the offers applied (from ``offers.v1``) and invoices behind recovered revenue.
    queries: RecordQueries
    announced: AnnouncedImports
    recovered_revenue: RecoveredRevenueSources
    tuning: Tuning = field(default_factory=Tuning)
    clock: Clock = utc_now
    local: LocalState = field(default_factory=LocalState)
    #: Erasing an account's processor data (``ProcessorDisconnected.erase``); ``None``: not wired.
    erasure: AccountErasure | None = None
    #: Stored churn summaries and what keeps them current; ``None``: churn is computed per request.
    churn_summaries: ChurnSummaries | None = None
    churn: ChurnSummaryKeeper | None = None
