"""What the services' MongoDB share: the one client factory, durable writes where a lost one loses
state, and how long the working collections keep a document (TTL indexes).

A write acknowledged by the primary alone is lost if the primary fails before a secondary copied
it. Where that loses state nobody can rebuild (stored credentials, the connector's outbox, an
import's state, the send ledger, an applied offer), the collection writes with a majority write
concern through :func:`durable`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, TypeVar

from pymongo import ASCENDING, AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection

#: Acknowledged once a majority of the replica set holds the write, journaled.
MAJORITY: Final = WriteConcern(w="majority", j=True)

#: Retention of the working collections (a TTL index each), longer than any redelivery can reach back.
#: ``import_pages``: the page ledger of an import, needed while it runs and for its recovery; its page
#: requests live 7 days on Kafka.
IMPORT_PAGES_RETENTION: Final = timedelta(days=30)
#: ``email_ledger``: one entry per import email, which dedupes a redelivered outcome event;
#: ``imports.v1`` keeps events 30 days.
EMAIL_LEDGER_RETENTION: Final = timedelta(days=90)
#: ``rate_budgets``: a processor account's request slots; idle budgets restart from empty.
RATE_BUDGETS_RETENTION: Final = timedelta(days=7)
#: ``import_counts``: the connector's copy of an import's progress counts, shown on the connection.
IMPORT_COUNTS_RETENTION: Final = timedelta(days=180)

_Document = TypeVar("_Document", bound=dict[str, Any])
Document = dict[str, Any]


def mongo_client(url: str, *, service: str, **options: Any) -> AsyncMongoClient[Document]:
    """A client of ``url`` (``MONGODB_URL``) whose datetimes come back aware (UTC), named after the service.

    The driver's defaults hold, retryable writes included; a URL option such as
    ``retryWrites=false`` (a development store that makes them slow) turns one off where it is set.
    """
    return AsyncMongoClient(url, tz_aware=True, appname=service, **options)


async def ping(client: AsyncMongoClient[Document]) -> None:
    """Readiness: the store answers."""
    await client.admin.command("ping")


def durable(collection: AsyncCollection[_Document]) -> AsyncCollection[_Document]:
    """``collection`` writing with the majority write concern."""
    return collection.with_options(write_concern=MAJORITY)


async def ensure_retention(collection: AsyncCollection[Any], field: str, keep: timedelta) -> None:
    """A TTL index removing each document ``keep`` after the date in ``field`` (a document without
    a date there is kept)."""
    await collection.create_index(
        [(field, ASCENDING)], name=f"retention_{field}", expireAfterSeconds=int(keep.total_seconds())
    )
