"""What both fakes share for their event history: a clock tests can move, ids, an append-only log.

Every change to an object appends one event to its account's (Stripe) or site's (Chargebee)
`EventLog`. Events are kept ascending by (time, id): times never go backwards and ids are
generated in increasing order, so the log's append order is its sort order and a page is found
with bisect.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sandbox.collection import SortedView

Obj = dict[str, Any]
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # in ASCII order
_ID_WIDTH = 10  # 62**10 microseconds: far beyond any date the fakes will see
_BYTE_TO_BASE62 = bytes(ord(_BASE62[b % 62]) for b in range(256))


class SandboxClock:
    """Wall-clock seconds plus an offset tests move forward (`/_sandbox/clock`) to age events."""

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self.offset_s = 0.0

    def now(self) -> float:
        return self._base() + self.offset_s

    def advance(self, seconds: float) -> float:
        self.offset_s += seconds
        return self.offset_s

    def reset(self) -> None:
        self.offset_s = 0.0


class IdGenerator:
    """Ids that sort in the order they were made: `prefix` + 10 ordered characters + random ones."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def new(self, prefix: str, random_chars: int) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            value = self._last
        ordered = []
        for _ in range(_ID_WIDTH):
            value, digit = divmod(value, 62)
            ordered.append(_BASE62[digit])
        tail = secrets.token_bytes(random_chars).translate(_BYTE_TO_BASE62).decode()
        return prefix + "".join(reversed(ordered)) + tail


class EventLog:
    """The events of one account or site, ascending by (`time_field`, id)."""

    def __init__(self, time_field: str) -> None:
        self.time_field = time_field
        self._keys: list[tuple[Any, str]] = []
        self._items: list[Obj] = []
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self._items))

    def latest_time(self) -> int:
        return int(self._items[-1][self.time_field]) if self._items else 0

    def append(self, event: Obj) -> None:
        """Add the newest event; its time must not be before the previous one's (see `next_time`)."""
        with self._lock:
            key = (int(event[self.time_field]), str(event["id"]))
            if self._keys and key <= self._keys[-1]:
                raise ValueError("events must be appended in (time, id) order")
            self._positions[key[1]] = len(self._items)
            self._keys.append(key)
            self._items.append(event)

    def next_time(self, now: float) -> int:
        """The time to give the next event: `now` in whole seconds, never before the last event."""
        return max(int(now), self.latest_time())

    def get(self, event_id: str) -> Obj | None:
        position = self._positions.get(event_id)
        return None if position is None else self._items[position]

    def position(self, event_id: str) -> int | None:
        return self._positions.get(event_id)

    def view(self) -> SortedView:
        """A read-only sorted view over the log as it is now (later appends extend it)."""
        return SortedView(self._keys, self._items)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._items.clear()
            self._positions.clear()


def scan(
    view: SortedView, lo: int, hi: int, *, descending: bool, limit: int, keep: Callable[[Obj], bool]
) -> tuple[list[Obj], bool]:
    """Up to `limit` events of [lo, hi) passing `keep`, newest or oldest first, and whether more pass."""
    found: list[Obj] = []
    indexes = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
    for index in indexes:
        event = view.items[index]
        if not keep(event):
            continue
        if len(found) == limit:
            return found, True
        found.append(event)
    return found, False
