"""One importer process's sync work in flight: what lets one account's objects be applied at once.

The sync topic is keyed by processor account, so one account's messages all reach one process; that
process handles them concurrently (the consumer is not ordered by key) and this keeps it right:

- **one apply at a time per object**, in the order the work arrived (``asyncio.Lock`` wakes its
  waiters first come, first served): two re-reads of one object never race to the store or the
  topic, where the older read published last would be the compacted topic's "latest";
- **a bounded number of objects per connection at once** (:data:`OBJECTS_IN_FLIGHT`): its re-reads
  in flight, and so the rate-budget slots they hold ahead, stay few;
- **one poll at a time per connection**: two polls never move one cursor;
- **when each object was last re-read** (this process's clock, the instant the read was sent, only
  once the apply finished): an event whose change happened before that instant is covered by that
  read, and needs no re-read of its own (``sync_apply``). Forgetting is safe (the next event re-reads),
  so at most :data:`REMEMBERED_READS` objects are remembered;
- **what it last published of each record** (the version and a digest of the content, once the
  record's message is out, :meth:`SyncWork.remember_published`): a listed record with the same
  content needs neither a write nor a message, as long as the store still holds that version.
  Only what this process published itself counts (a record another process or a crashed one
  wrote may never have reached its topic), and forgetting is safe (the record is written again);
- **which objects wait for a re-read**, per connection and resource (:meth:`SyncWork.waiting`), and
  **one listing at a time per connection and resource** (:meth:`SyncWork.listed_since`): objects
  waiting for a re-read wait for a listing that started after their change instead, and join the
  one that runs when it started late enough. A listing applies each object it lists under that
  object's own lock, so a listed and a retrieved read of one object never race either.
"""

from __future__ import annotations

import asyncio
import functools
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

#: Distinct objects of one connection applied at once.
OBJECTS_IN_FLIGHT: Final = 16
#: Objects whose last re-read this process remembers.
REMEMBERED_READS: Final = 100_000

#: How long the creation times of a resource's stored records (what a listing of it would take,
#: and where its windows are cut) are trusted.
KNOWN_OBJECTS_S: Final = 60.0
#: Listings one object's work waits for at most (each started before its change was received)
#: before it re-reads the object alone.
LISTINGS_WAITED: Final = 3

#: (connection id, resource, object id)
ObjectKey = tuple[str, str, str]
#: (connection id, resource)
ResourceKey = tuple[str, str]
#: (connection id, collection, record key)
RecordKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Published:
    """A record as this process last published it: the version written, and its content's digest."""

    version: int
    digest: bytes


@dataclass(slots=True)
class _Listing:
    started_at: datetime
    done: asyncio.Future[None]


_Primitive = TypeVar("_Primitive", asyncio.Lock, asyncio.Semaphore)


@dataclass(slots=True)
class _Shared(Generic[_Primitive]):
    primitive: _Primitive
    users: int = 0


class _Keyed(Generic[_Primitive]):
    """A lock (or semaphore) per key, kept only while someone holds or waits for it."""

    def __init__(self, make: Callable[[], _Primitive]) -> None:
        self._make: Callable[[], _Primitive] = make
        self._held: dict[Hashable, _Shared[_Primitive]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        shared = self._held.get(key)
        if shared is None:
            shared = self._held[key] = _Shared(self._make())
        shared.users += 1
        try:
            async with shared.primitive:
                yield
        finally:
            shared.users -= 1
            if shared.users == 0:
                del self._held[key]

    def __len__(self) -> int:
        return len(self._held)


class SyncWork:
    def __init__(
        self, *, objects_in_flight: int = OBJECTS_IN_FLIGHT, remembered_reads: int = REMEMBERED_READS
    ) -> None:
        self._objects: _Keyed[asyncio.Lock] = _Keyed(asyncio.Lock)
        self._connections: _Keyed[asyncio.Semaphore] = _Keyed(lambda: asyncio.Semaphore(objects_in_flight))
        self._polls: _Keyed[asyncio.Lock] = _Keyed(asyncio.Lock)
        self._read_at: OrderedDict[ObjectKey, datetime] = OrderedDict()
        self._published: OrderedDict[RecordKey, Published] = OrderedDict()
        self._remembered = remembered_reads
        self._waiting: dict[ResourceKey, Counter[str]] = {}
        self._listings: dict[ResourceKey, _Listing] = {}
        self._known: dict[ResourceKey, tuple[float, array[int]]] = {}
        self._counting: _Keyed[asyncio.Lock] = _Keyed(asyncio.Lock)

    def one_object(self, key: ObjectKey) -> AbstractAsyncContextManager[None]:
        """Held while the object is applied: the object's earlier work first."""
        return self._objects.hold(key)

    def connection_slot(self, connection_id: str) -> AbstractAsyncContextManager[None]:
        """Held while one object of the connection is re-read and stored."""
        return self._connections.hold(connection_id)

    def one_poll(self, connection_id: str) -> AbstractAsyncContextManager[None]:
        return self._polls.hold(connection_id)

    def last_read(self, key: ObjectKey) -> datetime | None:
        """When the last finished apply of the object sent its re-read, if this process remembers."""
        return self._read_at.get(key)

    def remember_read(self, key: ObjectKey, read_at: datetime) -> None:
        previous = self._read_at.pop(key, None)
        self._read_at[key] = read_at if previous is None else max(previous, read_at)
        while len(self._read_at) > self._remembered:
            self._read_at.popitem(last=False)

    def published(self, key: RecordKey) -> Published | None:
        """What this process last published of the record, if it remembers."""
        return self._published.get(key)

    def remember_published(self, key: RecordKey, published: Published) -> None:
        self._published.pop(key, None)
        self._published[key] = published
        while len(self._published) > self._remembered:
            self._published.popitem(last=False)

    @contextmanager
    def waiting(self, key: ObjectKey) -> Iterator[None]:
        """Held while the object waits for (or takes) a re-read: :meth:`waiting_objects` counts it."""
        resource = (key[0], key[1])
        objects = self._waiting.setdefault(resource, Counter())
        objects[key[2]] += 1
        try:
            yield
        finally:
            objects[key[2]] -= 1
            if objects[key[2]] <= 0:
                del objects[key[2]]
            if not objects and self._waiting.get(resource) is objects:
                del self._waiting[resource]

    def waiting_objects(self, resource: ResourceKey) -> int:
        """Distinct objects of the connection's resource waiting for a re-read now."""
        return len(self._waiting.get(resource, ()))

    async def known_created(
        self, resource: ResourceKey, read: Callable[[], Awaitable[Sequence[int]]]
    ) -> Sequence[int]:
        """The creation times of the resource's stored records (how many there are, and where a
        listing's windows are cut): ``read()``, trusted :data:`KNOWN_OBJECTS_S`."""
        if (known := self._known_now(resource)) is not None:
            return known
        async with self._counting.hold(resource):  # one look-up at a time: those waiting take its answer
            if (known := self._known_now(resource)) is not None:
                return known
            found = array("q", await read())
            self._known[resource] = (time.monotonic(), found)
            return found

    def _known_now(self, resource: ResourceKey) -> Sequence[int] | None:
        known = self._known.get(resource)
        if known is None or time.monotonic() - known[0] >= KNOWN_OBJECTS_S:
            return None
        return known[1]

    async def listed_since(
        self,
        resource: ResourceKey,
        since: datetime,
        clock: Callable[[], datetime],
        run: Callable[[], Awaitable[None]],
    ) -> bool:
        """Wait for a listing of the resource that started at or after ``since`` and finished:
        join the running one if it started late enough, else wait for it and start (or join) the
        next. ``False`` when one failed, or after :data:`LISTINGS_WAITED` that started too early."""
        for _ in range(LISTINGS_WAITED):
            current = self._listings.get(resource)
            if current is None:
                current = _Listing(clock(), asyncio.ensure_future(run()))
                self._listings[resource] = current
                current.done.add_done_callback(functools.partial(self._listing_done, resource))
            try:
                await asyncio.shield(current.done)
            except Exception:  # the listing failed: the caller re-reads alone (and reports that)
                return False
            if current.started_at >= since:
                return True
        return False

    def _listing_done(self, resource: ResourceKey, done: asyncio.Future[None]) -> None:
        current = self._listings.get(resource)
        if current is not None and current.done is done:
            del self._listings[resource]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone
