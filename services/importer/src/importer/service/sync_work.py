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
  so at most :data:`REMEMBERED_READS` objects are remembered.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

#: Distinct objects of one connection applied at once.
OBJECTS_IN_FLIGHT: Final = 16
#: Objects whose last re-read this process remembers.
REMEMBERED_READS: Final = 100_000

#: (connection id, resource, object id)
ObjectKey = tuple[str, str, str]
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
        self._remembered = remembered_reads

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

    @property
    def objects_in_work(self) -> int:
        return len(self._objects)
