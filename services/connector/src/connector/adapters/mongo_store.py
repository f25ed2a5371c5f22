"""The connector's MongoDB: the collections' names and indexes.

The repositories over it: ``mongo_connections`` (connections and their outbox),
``mongo_oauth_states`` (pending OAuth grants), ``mongo_onboarding_links`` (links already followed)
and ``mongo_import_counts``.
"""

from __future__ import annotations

from typing import Any, Final

from contracts.connections import CONNECTIONS_COLLECTION
from contracts.runtime.mongo import IMPORT_COUNTS_RETENTION, ensure_retention
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from connector.adapters.mongo_import_counts import IMPORT_COUNTS_COLLECTION

OAUTH_STATES_COLLECTION: Final = "oauth_states"
ONBOARDING_LINKS_COLLECTION: Final = "onboarding_links"
ONE_CURRENT_CONNECTION_INDEX: Final = "one_current_connection_per_account"

Document = dict[str, Any]

#: The Stripe account whose OAuth grant to our platform is still to be revoked, if any.
REVOKE_GRANT_FIELD: Final = "revoke_grant_of"


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    connections = db[CONNECTIONS_COLLECTION]
    await connections.create_index(
        [("account_id", ASCENDING)],
        name=ONE_CURRENT_CONNECTION_INDEX,
        unique=True,
        partialFilterExpression={"active": True},
    )
    await connections.create_index([("account_id", ASCENDING), ("created_at", DESCENDING)])
    await connections.create_index([("outbox.queued_at", ASCENDING)])
    await connections.create_index([("latest_import.import_id", ASCENDING)])
    await connections.create_index([("status", ASCENDING), ("created_at", ASCENDING)])
    await connections.create_index([(REVOKE_GRANT_FIELD, ASCENDING)], sparse=True)
    await connections.create_index([("reconnect_request_ids", ASCENDING)], sparse=True)
    await ensure_retention(db[IMPORT_COUNTS_COLLECTION], "updated_at", IMPORT_COUNTS_RETENTION)
    states = db[OAUTH_STATES_COLLECTION]
    # Expired states are refused by the query; the TTL index only keeps the collection small.
    await states.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    await states.create_index([("connection_id", ASCENDING)])
    # A used link is remembered until it expires, when it could no longer open a session anyway.
    await db[ONBOARDING_LINKS_COLLECTION].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
