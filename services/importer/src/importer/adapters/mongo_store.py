"""MongoDB behind the importer: the collections' names and indexes, and a bulk-write helper.

The repositories over it: ``mongo_imports`` (the ``imports`` jobs), ``mongo_page_ledger`` (the
``import_pages`` ledger), ``mongo_records`` (canonical records) and ``mongo_churn`` (churn summaries).
"""

from __future__ import annotations

from typing import Any, Final

from contracts.records import CancellationRecord, CouponRecord
from contracts.runtime.mongo import IMPORT_PAGES_RETENTION, RATE_BUDGETS_RETENTION, ensure_retention
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from importer.adapters.mongo_churn import ensure_churn_indexes
from importer.adapters.rate_budget import RATE_BUDGETS_COLLECTION

Document = dict[str, Any]

IMPORTS: Final = "imports"
IMPORT_PAGES: Final = "import_pages"
DUPLICATE_KEY: Final = 11000
#: Set to the connection id while an import runs or finalizes, removed when it ends: a unique index on
#: it lets one import of a connection run at a time, whoever asks and however.
CONNECTION_SLOT: Final = "connection_slot"
ONE_RUNNING_IMPORT_INDEX: Final = "one_running_import_per_connection"


async def ensure_indexes(database: AsyncDatabase[Document]) -> None:
    """The indexes the importer's queries need; record collections keep only ``_id`` (``mongo_records``)."""
    imports = database[IMPORTS]
    await imports.create_index([("account_id", ASCENDING), ("created_at", DESCENDING)])
    await imports.create_index([("connection_id", ASCENDING), ("status", ASCENDING)])
    await imports.create_index([("status", ASCENDING)])
    await imports.create_index(
        [(CONNECTION_SLOT, ASCENDING)],
        name=ONE_RUNNING_IMPORT_INDEX,
        unique=True,
        partialFilterExpression={CONNECTION_SLOT: {"$exists": True}},
    )
    pages = database[IMPORT_PAGES]
    await pages.create_index([("import_id", ASCENDING), ("status", ASCENDING)])
    await pages.create_index([("import_id", ASCENDING), ("status", ASCENDING), ("resource", ASCENDING)])
    # Recovery's stale pages (`MongoPageLedger.claim_stale`, every few seconds per running import).
    await pages.create_index([("import_id", ASCENDING), ("status", ASCENDING), ("published_at", ASCENDING)])
    await database[CancellationRecord.collection].create_index(
        [("account_id", ASCENDING), ("listed_at", DESCENDING), ("_id", DESCENDING)]
    )
    await database[CouponRecord.collection].create_index(
        [("account_id", ASCENDING), ("processor", ASCENDING)]
    )
    await ensure_churn_indexes(database)
    await ensure_retention(pages, "planned_at", IMPORT_PAGES_RETENTION)
    await ensure_retention(database[RATE_BUDGETS_COLLECTION], "now", RATE_BUDGETS_RETENTION)


def raise_unless_duplicates(error: BulkWriteError) -> list[int]:
    """The indexes of the documents that failed as duplicates; any other failure is raised."""
    write_errors = error.details.get("writeErrors", [])
    if any(item.get("code") != DUPLICATE_KEY for item in write_errors) or error.details.get(
        "writeConcernErrors"
    ):
        raise error
    return [int(item["index"]) for item in write_errors]
