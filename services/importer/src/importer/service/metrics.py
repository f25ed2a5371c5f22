"""What an SRE charts about imports as a whole: how many ended, how, and how long they took.

Each import is counted once, by the process that won its outcome (completion or failure are single
conditional updates), so the sum over replicas is the number of imports.
"""

from __future__ import annotations

from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter, Histogram

from importer.service.model import ImportJob, ImportStatus

IMPORTS_ENDED: Final = Counter(
    "importer_imports_total",
    "Imports that ended, by processor and outcome (completed, or the failure code)",
    ["processor", "outcome"],
    registry=REGISTRY,
)
IMPORT_SECONDS: Final = Histogram(
    "importer_import_duration_seconds",
    "From an import's start to its end, by processor and outcome (completed or failed)",
    ["processor", "outcome"],
    registry=REGISTRY,
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200),
)


def count_ended(job: ImportJob, *, failure_code: str | None = None) -> None:
    """Count an import that just ended (``job`` as the winning transition returned it)."""
    completed = job.status is ImportStatus.COMPLETED
    processor = job.processor.value
    IMPORTS_ENDED.labels(processor, "completed" if completed else (failure_code or "failed")).inc()
    if job.started_at is not None and job.finished_at is not None:
        seconds = (job.finished_at - job.started_at).total_seconds()
        IMPORT_SECONDS.labels(processor, "completed" if completed else "failed").observe(max(0.0, seconds))
