"""Reading a connected account's changes: its event list, its objects one by one, and a resource's
whole list (the import's pages, :class:`StripeSource` / :class:`ChargebeeSource` on the same client).

Requests go through the same :class:`ProcessorClient` and shared rate budget as the import's pages,
on the account's own bucket. While an import of the connection is unfinished (queued, running or
finalizing), they all go through one extra bucket, ``sync``, limited to a share of the account's
rate (``SYNC_RATE_SHARE``): sync never takes more than that share, so the import keeps the rest,
and sync still gets its share however busy the import is. With no import, the share would only
leave the account's rate unused: sync then takes the account's whole rate, each endpoint (the event
list, each resource's retrieve) within the processor's own per-endpoint limit (Stripe: 25/s in live
mode), as the import's lists are (:class:`SyncRateBudget`).
Whether an import runs is looked up at most every :data:`IMPORT_CHECK_S` per connection, so an
import that starts finds sync down to its share within about that long (sync holds few slots ahead:
``service.sync_work`` bounds its re-reads in flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from contracts.connections import (
    CONNECTIONS_COLLECTION,
    ProcessorCredentials,
    StoredConnection,
)
from contracts.events import Processor
from pymongo.asynchronous.database import AsyncDatabase

from importer.adapters.chargebee_source import ENTRY_KEYS, ChargebeeSource
from importer.adapters.connection_credentials import ByConnection, ProcessorAccess
from importer.adapters.mongo_store import IMPORTS
from importer.adapters.processor_http import ProcessorClient, RetryPolicy
from importer.adapters.rate_budget import RateBudget, RateLimits
from importer.adapters.sources import chargebee_pace, processor_account
from importer.adapters.stripe_source import LIST_PARAMS, STRIPE_API_VERSION, StripeSource
from importer.domain.model import ImportStatus
from importer.domain.ports import SourceUnavailable
from importer.domain.raw import integer, mapping, sequence, text
from importer.domain.source import (
    FetchedPage,
    PageQuery,
    RawObject,
    SourceError,
    SourceErrorCode,
    Window,
)
from importer.domain.sync import LIST_CHAINS, LIST_PAGE_SIZE, ListedEvents, ProcessorChange
from importer.domain.sync_ports import SyncReader

SYNC_ENDPOINT: Final = "sync"
EVENTS_ENDPOINT: Final = "events"
DEFAULT_SYNC_SHARE: Final = 0.2
PAGE_SIZE: Final = 100
#: At most this many pages of events in one poll; the rest waits for the next one (Stripe's list,
#: newest first, is read on from where the poll stopped: ``domain.sync.EventSweep``).
MAX_EVENT_PAGES: Final = 50
READER_TTL_S: Final = 30.0
#: How long the answer to "is an import of this connection unfinished?" is trusted.
IMPORT_CHECK_S: Final = 1.0
_UNFINISHED_IMPORTS: Final = [
    ImportStatus.QUEUED.value,
    ImportStatus.RUNNING.value,
    ImportStatus.FINALIZING.value,
]

_STRIPE_RETRIEVE_PARAMS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "subscriptions": (("expand[]", "discounts"),),
    "prices": (("expand[]", "product"),),
    "plans": (("expand[]", "product"),),
}
_CHARGEBEE_KEYS: Final = (
    "item_price",
    "subscription",
    "customer",
    "invoice",
    "coupon",
    "addon",
    "plan",
    "item",
)


def list_chains(limits: RateLimits) -> int:
    """Windows of one list read at once: about a second's requests of the list endpoint (each page
    takes a quarter of a second or more at the processor), at most :data:`LIST_CHAINS`."""
    per_s = limits.endpoint_per_s if limits.endpoint_per_s is not None else limits.per_s
    return max(1, min(LIST_CHAINS, int(per_s)))


def retrieve_endpoint(resource: str) -> str:
    """A resource's retrieve endpoint, limited apart from its list at the processor."""
    return f"{resource}/id"


async def _retrieve(
    client: ProcessorClient, resource: str, url: str, params: list[tuple[str, str]]
) -> Mapping[str, Any] | None:
    try:
        return await client.get_json(url, params, endpoint=retrieve_endpoint(resource))
    except SourceError as error:
        if error.status == 404:
            return None
        raise


class StripeSyncReader:
    def __init__(
        self,
        client: ProcessorClient,
        api_base: str,
        *,
        chains: int = 1,
        event_page_size: int = PAGE_SIZE,
        event_pages: int = MAX_EVENT_PAGES,
    ) -> None:
        self._client = client
        self.list_chains = chains
        self._api_base = api_base.rstrip("/")
        self._lists = StripeSource(client, api_base)
        self._event_page_size = event_page_size
        self._event_pages = event_pages

    async def list_page(self, resource: str, window: Window, cursor: str | None) -> FetchedPage:
        return await self._lists.fetch_page(
            PageQuery(resource, window=window, cursor=cursor, limit=LIST_PAGE_SIZE)
        )

    async def events_since(self, cursor_s: int, *, after: str | None = None) -> ListedEvents:
        # Newest first: a list cut by the cap goes on after its last (oldest) event next poll.
        found: list[ProcessorChange] = []
        for _ in range(self._event_pages):
            params = [("created[gte]", str(cursor_s)), ("limit", str(self._event_page_size))]
            if after is not None:
                params.append(("starting_after", after))
            body = await self._client.get_json(
                f"{self._api_base}/v1/events", params, endpoint=EVENTS_ENDPOINT
            )
            events = [mapping(entry) for entry in sequence(body.get("data"))]
            found.extend(_stripe_change(event) for event in events if text(event.get("id")))
            last = text(events[-1].get("id")) if events else None
            if body.get("has_more") is not True or last is None:
                return ListedEvents(found)
            after = last
        return ListedEvents(found, complete=False, continue_after=after)

    async def list_of_product(self, resource: str, product_id: str, cursor: str | None) -> FetchedPage:
        params = [("limit", str(LIST_PAGE_SIZE)), ("product", product_id), *LIST_PARAMS.get(resource, ())]
        if cursor is not None:
            params.append(("starting_after", cursor))
        body = await self._client.get_json(f"{self._api_base}/v1/{resource}", params, endpoint=resource)
        objects = [mapping(entry) for entry in sequence(body.get("data")) if isinstance(entry, Mapping)]
        last = text(objects[-1].get("id")) if objects else None
        return FetchedPage(objects=objects, next_cursor=last if body.get("has_more") is True else None)

    async def retrieve(self, resource: str, object_id: str) -> RawObject | None:
        params = list(_STRIPE_RETRIEVE_PARAMS.get(resource, ()))
        raw = await _retrieve(self._client, resource, f"{self._api_base}/v1/{resource}/{object_id}", params)
        if raw is None or raw.get("deleted") is True:
            return None
        return raw

    def version_of(self, raw: RawObject, read_at_ms: int) -> int:
        # Stripe objects carry no version: a later read is a newer state.
        return read_at_ms


def _stripe_change(event: Mapping[str, Any]) -> ProcessorChange:
    changed = mapping(mapping(event.get("data")).get("object"))
    return ProcessorChange(
        event_id=str(event.get("id")),
        event_type=str(event.get("type")),
        created=integer(event.get("created")) or 0,
        object_type=text(changed.get("object")),
        object_id=text(changed.get("id")),
    )


class ChargebeeSyncReader:
    def __init__(
        self,
        client: ProcessorClient,
        site_url: str,
        *,
        chains: int = 1,
        event_page_size: int = PAGE_SIZE,
        event_pages: int = MAX_EVENT_PAGES,
    ) -> None:
        self._client = client
        self.list_chains = chains
        self._site_url = site_url.rstrip("/")
        self._lists = ChargebeeSource(client, site_url, None)
        self._event_page_size = event_page_size
        self._event_pages = event_pages

    async def list_page(self, resource: str, window: Window, cursor: str | None) -> FetchedPage:
        return await self._lists.fetch_page(
            PageQuery(resource, window=window, cursor=cursor, limit=LIST_PAGE_SIZE)
        )

    async def events_since(self, cursor_s: int, *, after: str | None = None) -> ListedEvents:
        # Oldest first: a list cut by the cap holds the oldest events, and the cursor moves to the
        # newest of them; the next poll reads on from there (``after`` is never asked for).
        found: list[ProcessorChange] = []
        offset: str | None = None
        for _ in range(self._event_pages):
            # ``after`` is exclusive: one second earlier includes the cursor's second.
            params = [
                ("occurred_at[after]", str(cursor_s - 1)),
                ("sort_by[asc]", "occurred_at"),
                ("limit", str(self._event_page_size)),
            ]
            if offset is not None:
                params.append(("offset", offset))
            body = await self._client.get_json(f"{self._site_url}/events", params, endpoint=EVENTS_ENDPOINT)
            for entry in sequence(body.get("list")):
                event = mapping(mapping(entry).get("event"))
                if text(event.get("id")):
                    found.append(_chargebee_change(event))
            offset = text(body.get("next_offset"))
            if offset is None:
                return ListedEvents(found)
        return ListedEvents(found, complete=False)

    async def list_of_product(self, resource: str, product_id: str, cursor: str | None) -> FetchedPage:
        # Chargebee's prices carry their own names: no resource is read through an item.
        raise SourceError(
            SourceErrorCode.INVALID_REQUEST,
            f"chargebee lists no {resource} by product",
            retryable=False,
        )

    async def retrieve(self, resource: str, object_id: str) -> RawObject | None:
        entry = ENTRY_KEYS.get(resource)
        if entry is None:
            return None
        body = await _retrieve(self._client, resource, f"{self._site_url}/{resource}/{object_id}", [])
        raw = None if body is None else body.get(entry)
        if not isinstance(raw, Mapping) or raw.get("deleted") is True:
            return None
        return raw

    def version_of(self, raw: RawObject, read_at_ms: int) -> int:
        return integer(raw.get("resource_version")) or read_at_ms


def _chargebee_change(event: Mapping[str, Any]) -> ProcessorChange:
    content = mapping(event.get("content"))
    event_type = str(event.get("event_type"))
    object_type = next(
        (key for key in _CHARGEBEE_KEYS if event_type.startswith(f"{key}_") and key in content),
        next((key for key in _CHARGEBEE_KEYS if key in content), None),
    )
    changed = mapping(content.get(object_type)) if object_type else {}
    return ProcessorChange(
        event_id=str(event.get("id")),
        event_type=event_type,
        created=integer(event.get("occurred_at")) or 0,
        object_type=object_type,
        object_id=text(changed.get("id")),
        resource_version=integer(changed.get("resource_version")),
    )


class SyncRateBudget:
    """The rate budget as one connection's sync uses it. The limits it is given are the processor's
    (the account's, and each endpoint's). While ``importing()`` says an import runs, every sync
    request goes through the one ``sync`` bucket at ``share`` of the account's rate; otherwise each
    through its own endpoint's bucket, within the account's whole rate."""

    def __init__(self, budget: RateBudget, importing: Callable[[], Awaitable[bool]], share: float) -> None:
        self._budget = budget
        self._importing = importing
        self._share = share

    async def acquire(self, account_key: str, endpoint: str, *, limits: RateLimits | None = None) -> None:
        if limits is not None and await self._importing():
            await self._budget.acquire(
                account_key, SYNC_ENDPOINT, limits=RateLimits(limits.per_s, limits.per_s * self._share)
            )
            return
        await self._budget.acquire(account_key, endpoint, limits=limits)

    async def penalize(self, account_key: str, retry_after_s: float, *, endpoint: str | None = None) -> None:
        await self._budget.penalize(account_key, retry_after_s, endpoint=endpoint)


class ImportWatch:
    """Whether a connection has an unfinished import, read from the store at most every ``ttl_s``."""

    def __init__(
        self,
        database: AsyncDatabase[Any],
        *,
        ttl_s: float = IMPORT_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._ttl_s = ttl_s
        self._clock = clock
        self._seen: dict[str, tuple[float, bool]] = {}
        self._looking_up = asyncio.Lock()

    async def importing(self, connection_id: str) -> bool:
        if (known := self._known(connection_id)) is not None:
            return known
        async with self._looking_up:  # one look-up at a time: those waiting take its answer
            if (known := self._known(connection_id)) is not None:
                return known
            found = await self._database[IMPORTS].find_one(
                {"connection_id": connection_id, "status": {"$in": _UNFINISHED_IMPORTS}}, {"_id": 1}
            )
            self._seen[connection_id] = (self._clock(), found is not None)
            return found is not None

    def _known(self, connection_id: str) -> bool | None:
        seen = self._seen.get(connection_id)
        if seen is None or self._clock() - seen[0] >= self._ttl_s:
            return None
        return seen[1]


class ConnectionSyncReaders:
    """Readers of stored connections: read, decrypted and built here, each kept ``ttl_s`` at most
    (:class:`~importer.adapters.connection_credentials.ByConnection`), so decrypted credentials
    never outlive that time in memory."""

    def __init__(
        self,
        access: ProcessorAccess,
        *,
        share: float = DEFAULT_SYNC_SHARE,
        ttl_s: float = READER_TTL_S,
        event_page_size: int = PAGE_SIZE,
        event_pages: int = MAX_EVENT_PAGES,
    ) -> None:
        self._access = access
        self._share = share
        #: A poll's cap: pages of events it reads at most, and their size.
        self._event_page_size = event_page_size
        self._event_pages = event_pages
        self._readers: ByConnection[SyncReader] = ByConnection(ttl_s)
        self._imports = ImportWatch(access.database)

    @property
    def cached_connections(self) -> frozenset[str]:
        return self._readers.connections

    async def connection(self, connection_id: str) -> StoredConnection | None:
        document = await self._access.database[CONNECTIONS_COLLECTION].find_one({"_id": connection_id})
        return None if document is None else StoredConnection.model_validate(document)

    async def reader_for(self, connection_id: str, account_id: str) -> SyncReader:
        async def build() -> SyncReader:
            return self._build(*await self._access.open(connection_id, account_id))

        return await self._readers.held_or_built(connection_id, build)

    def forget(self, connection_id: str) -> None:
        """Drop the connection's reader now (it was disconnected); its credentials leave memory."""
        self._readers.forget(connection_id)

    def _build(self, connection: StoredConnection, credentials: ProcessorCredentials) -> SyncReader:
        connection_id = connection.connection_id
        access = self._access

        async def importing() -> bool:
            return await self._imports.importing(connection_id)

        budget = SyncRateBudget(access.rate_budget, importing, self._share)
        if connection.processor is Processor.STRIPE:
            account = processor_account(connection, credentials, access.limits)
            client = ProcessorClient(
                access.http,
                account,
                budget,
                headers={"Stripe-Version": STRIPE_API_VERSION},
                policy=RetryPolicy(rate_limit_window_s=1.0, rate_limited_wait_s=20.0, transient_retries=2),
            )
            return StripeSyncReader(
                client,
                access.stripe_api_base,
                chains=list_chains(account.limits),
                event_page_size=self._event_page_size,
                event_pages=self._event_pages,
            )
        if connection.processor is Processor.CHARGEBEE and connection.site:
            account = processor_account(connection, credentials, access.limits)
            client = ProcessorClient(
                access.http,
                account,
                budget,
                headers={"Accept": "application/json"},
                policy=RetryPolicy(rate_limit_window_s=60.0, rate_limited_wait_s=20.0, transient_retries=2),
                pace=chargebee_pace(access.learner, connection, access.limits, probe_live=access.probe_live),
            )
            return ChargebeeSyncReader(
                client,
                access.chargebee_url_template.replace("{site}", connection.site),
                chains=list_chains(account.limits),
                event_page_size=self._event_page_size,
                event_pages=self._event_pages,
            )
        raise SourceUnavailable(f"connection {connection.connection_id} names no processor to sync")
