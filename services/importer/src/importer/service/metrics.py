"""What an SRE charts about imports as a whole: how many ended, how, and how long they took.

Each import is counted once, by the process that won its outcome (completion or failure are single
conditional updates), so the sum over replicas is the number of imports.
"""

from __future__ import annotations

from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter, Histogram

from importer.domain.model import ImportJob, ImportStatus

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


def count_ended(job: ImportJob) -> None:
    """Count an import that just ended (``job`` as the winning transition returned it)."""
    completed = job.status is ImportStatus.COMPLETED
    processor = job.processor.value
    IMPORTS_ENDED.labels(processor, "completed" if completed else (job.error_code or "failed")).inc()
    if job.duration_s is not None:
        IMPORT_SECONDS.labels(processor, "completed" if completed else "failed").observe(
            max(0.0, job.duration_s)
        )
