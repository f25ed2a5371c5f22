"""Objects of one resource kept sorted for cheap pagination, with deletions mid-listing.

A `Collection` holds one resource of one account or site. Lists are served from a `SortedView`:
the objects passing a filter, sorted ascending by `(sort field, id)`; a page is found with bisect,
so it costs O(limit + log n). Views are built on first use and cached until the collection
changes (a deletion). Cursors stay valid after a deletion: a deleted object keeps its sort key.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
SortKey = tuple[Any, str]
"""(sort value, id): the value is an int timestamp, or a string for name/id sorts."""
Predicate = Callable[[Obj], bool]

VIEW_CACHE_SIZE = 128


def sort_key(obj: Obj, sort_field: str, id_field: str = "id") -> SortKey:
    value = obj.get(sort_field)
    if isinstance(value, str):
        return (value, str(obj[id_field]))
    return (int(value) if value is not None else 0, str(obj[id_field]))


@dataclass(frozen=True)
class Page:
    items: list[Obj]
    has_more: bool


class SortedView:
    """Objects ascending by (sort value, id); `lo`/`hi` index ranges come from `bounds`."""

    def __init__(self, keys: list[SortKey], items: list[Obj]) -> None:
        self.keys = keys
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def bounds(
        self,
        *,
        gt: int | None = None,
        gte: int | None = None,
        lt: int | None = None,
        lte: int | None = None,
    ) -> tuple[int, int]:
        """Index range [lo, hi) of the objects whose sort value satisfies every bound given."""
        lo, hi = 0, len(self.keys)
        if gt is not None:
            lo = max(lo, bisect.bisect_left(self.keys, (gt + 1, "")))
        if gte is not None:
            lo = max(lo, bisect.bisect_left(self.keys, (gte, "")))
        if lt is not None:
            hi = min(hi, bisect.bisect_left(self.keys, (lt, "")))
        if lte is not None:
            hi = min(hi, bisect.bisect_left(self.keys, (lte + 1, "")))
        return lo, max(lo, hi)

    def position_before(self, key: SortKey) -> int:
        """Index of the first object whose key is >= key (objects before it sort lower)."""
        return bisect.bisect_left(self.keys, key)

    def position_after(self, key: SortKey) -> int:
        """Index of the first object whose key is > key."""
        return bisect.bisect_right(self.keys, key)

    def descending(self, lo: int, hi: int, limit: int) -> Page:
        """The highest `limit` objects of [lo, hi), highest first."""
        start = max(lo, hi - limit)
        return Page(self.items[start:hi][::-1], start > lo)

    def ascending(self, lo: int, hi: int, limit: int) -> Page:
        """The lowest `limit` objects of [lo, hi), lowest first."""
        end = min(hi, lo + limit)
        return Page(self.items[lo:end], end < hi)


class Collection:
    """One resource's objects; `sort_fields` are the fields lists may be ordered by."""

    def __init__(
        self,
        name: str,
        objects: Iterable[Obj],
        *,
        sort_fields: Sequence[str],
        id_field: str = "id",
    ) -> None:
        self.name = name
        self.id_field = id_field
        self.sort_fields = tuple(sort_fields)
        self._original = list(objects)
        self._views: OrderedDict[Hashable, SortedView] = OrderedDict()
        self.reset()

    def reset(self) -> None:
        """Back to the objects given at construction (undoes deletions)."""
        self._by_id: dict[str, Obj] = {str(o[self.id_field]): o for o in self._original}
        self._removed: dict[str, Obj] = {}
        self._views.clear()

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, object_id: str) -> Obj | None:
        return self._by_id.get(object_id)

    def removed(self, object_id: str) -> Obj | None:
        return self._removed.get(object_id)

    def key_of(self, object_id: str, sort_field: str) -> SortKey | None:
        """Sort key of a present or removed object (so a cursor on a deleted object still works)."""
        obj = self._by_id.get(object_id) or self._removed.get(object_id)
        return None if obj is None else sort_key(obj, sort_field, self.id_field)

    def remove(self, object_ids: Iterable[str]) -> list[str]:
        """Drop objects from every list; returns the ids that were present."""
        gone = [oid for oid in object_ids if oid in self._by_id]
        for oid in gone:
            self._removed[oid] = self._by_id.pop(oid)
        if gone:
            self._views.clear()
        return gone

    def replace(self, obj: Obj) -> None:
        """Swap in a new version of an object (for example marked deleted)."""
        self._by_id[str(obj[self.id_field])] = obj
        self._views.clear()

    def view(
        self, sort_field: str, filter_key: Hashable = None, predicate: Predicate | None = None
    ) -> SortedView:
        """Objects passing `predicate` sorted by `sort_field`; cached under (sort_field, filter_key)."""
        if sort_field not in self.sort_fields:
            raise ValueError(f"{self.name} cannot be sorted by {sort_field}")
        cache_key = (sort_field, filter_key)
        cached = self._views.get(cache_key)
        if cached is not None:
            self._views.move_to_end(cache_key)
            return cached
        pairs = sorted(
            (
                (sort_key(o, sort_field, self.id_field), o)
                for o in self._by_id.values()
                if predicate is None or predicate(o)
            ),
            key=lambda pair: pair[0],
        )
        built = SortedView([k for k, _ in pairs], [o for _, o in pairs])
        self._views[cache_key] = built
        if len(self._views) > VIEW_CACHE_SIZE:
            self._views.popitem(last=False)
        return built
