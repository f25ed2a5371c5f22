"""Every working collection has its retention (a TTL index), and durable writes go through on the store."""

from __future__ import annotations

from datetime import timedelta

from connector.adapters.mongo_store import ensure_indexes as ensure_connector_indexes
from contracts.runtime.mongo import (
    EMAIL_LEDGER_RETENTION,
    IMPORT_COUNTS_RETENTION,
    IMPORT_PAGES_RETENTION,
    MAJORITY,
    RATE_BUDGETS_RETENTION,
    durable,
    mongo_client,
)
from importer.adapters.mongo_store import ensure_indexes as ensure_importer_indexes
from notifier.adapters.mongo_ledger import MongoEmailLedger


async def test_each_working_collection_expires_its_documents_after_the_documented_retention(
    mongodb_url: str, mongodb_database: str
) -> None:
    client = mongo_client(mongodb_url, service="test")
    try:
        database = client[mongodb_database]
        await ensure_connector_indexes(database)
        await ensure_importer_indexes(database)
        await MongoEmailLedger(client, mongodb_database).ensure_indexes()

        expiring: dict[str, tuple[str, timedelta]] = {}
        for collection in ("import_pages", "email_ledger", "rate_budgets", "import_counts"):
            async for index in await database[collection].list_indexes():
                if "expireAfterSeconds" in index:
                    [field] = index["key"]
                    expiring[collection] = (field, timedelta(seconds=index["expireAfterSeconds"]))

        assert expiring == {
            "import_pages": ("planned_at", IMPORT_PAGES_RETENTION),
            "email_ledger": ("created_at", EMAIL_LEDGER_RETENTION),
            "rate_budgets": ("now", RATE_BUDGETS_RETENTION),
            "import_counts": ("updated_at", IMPORT_COUNTS_RETENTION),
        }
    finally:
        await client.close()


async def test_a_durable_collection_writes_with_the_majority_write_concern(
    mongodb_url: str, mongodb_database: str
) -> None:
    client = mongo_client(mongodb_url, service="test")
    try:
        collection = durable(client[mongodb_database]["durable_probe"])
        assert collection.write_concern == MAJORITY
        result = await collection.insert_one({"_id": "probe"})
        assert result.acknowledged
        assert await collection.find_one({"_id": "probe"}) == {"_id": "probe"}
    finally:
        await client.close()
