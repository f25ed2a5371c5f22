"""Page planning: the pages an import starts with, the pages a fetched page leads to, page identities.

An import copies each resource through *windows* over the creation time line (half-open, so an
object belongs to exactly one window whatever its timestamp) and walks each window with the
processor's own cursor. A window is one chain of pages; chains run in parallel. When a page shows
that the rest of its window is large and the resource has fewer chains running than it may, the
rest is cut into sub-windows: the one holding the last served timestamp keeps the cursor (so the
objects sharing that timestamp are served exactly once, by the cursor), the others start fresh.

Only the far end of a window is ever moved (newest first: its lower bound; oldest first: its upper
bound), so the objects the cursor has already passed are the same in the narrowed window and a
cursor, keyset or plain offset, stays valid.

Page ids are deterministic: the same page planned twice (a redelivered message) is the same page.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from importer.domain.source import FetchedPage, PageQuery, Window

PAGE_SIZE: Final = 100
#: No processor account holds objects created before this (Stripe and Chargebee started in 2011);
#: the planner uses it only to estimate how much an unbounded window may hold.
EARLIEST_CREATED_S: Final = int(datetime(2010, 1, 1, tzinfo=UTC).timestamp())


class ServeOrder(StrEnum):
    """The order a processor serves a window's objects in."""

    NEWEST_FIRST = "newest_first"  # Stripe
    OLDEST_FIRST = "oldest_first"  # Chargebee, sorted on created_at ascending


@dataclass(frozen=True, slots=True)
class SlicingPolicy:
    """How far an import fans out.

    ``chains_per_resource`` is the parallelism one resource needs to use its share of the
    processor's rate limit: Stripe live allows 25 requests/s per endpoint, and a chain's cycle (the
    page at the processor, storing it, the next request's trip through Kafka) is about 0.5 s, so
    ~13 chains; the rate budget holds back any excess.
    A window is cut only into pieces expected to hold ``min_pages_per_slice`` pages or more: each
    window ends with a partly filled page, so more windows than needed cost requests.
    """

    page_size: int = PAGE_SIZE
    chains_per_resource: int = 20
    #: Chains of all resources together (see :func:`chain_share`).
    import_chains: int = 48
    min_pages_per_slice: int = 10
    max_fanout: int = 8
    earliest_created_s: int = EARLIEST_CREATED_S


@dataclass(frozen=True, slots=True)
class PlannedPage:
    """A page of the ledger: what to fetch, for which import, and which page led to it."""

    page_id: str
    import_id: str
    query: PageQuery
    parent_id: str | None = None
    #: Pages the window holds from this page on, estimated from the density of the page before it
    #: in the same window (``None`` for a window's first page: not known yet).
    estimated_pages: float | None = None

    @property
    def resource(self) -> str:
        return self.query.resource


def page_id(import_id: str, query: PageQuery) -> str:
    """The page's identity: the same import, resource, window and cursor give the same id."""
    window = query.window
    canonical = "|".join(
        (
            query.resource,
            "" if window.created_gte is None else str(window.created_gte),
            "" if window.created_lt is None else str(window.created_lt),
            query.cursor or "",
            str(query.limit),
        )
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]
    return f"{import_id}:{query.resource}:{digest}"


def plan_import(
    import_id: str,
    resources: list[str] | tuple[str, ...],
    *,
    planned_at_s: int,
    policy: SlicingPolicy,
) -> list[PlannedPage]:
    """The first pages of an import: one window per resource, everything created up to the plan time.

    Objects created after the import was planned belong to the next import; the upper bound keeps a
    growing account from stretching an import without end.
    """
    pages: list[PlannedPage] = []
    for resource in dict.fromkeys(resources):
        query = PageQuery(resource, Window(None, planned_at_s + 1), None, policy.page_size)
        pages.append(PlannedPage(page_id(import_id, query), import_id, query))
    return pages


def next_pages(
    page: PlannedPage,
    fetched: FetchedPage,
    *,
    order: ServeOrder,
    policy: SlicingPolicy,
    splittable: bool,
    running_chains: int,
    chain_limit: int | None = None,
) -> list[PlannedPage]:
    """The pages ``page`` leads to: none when its window is exhausted, else the next page of the
    window, possibly with sibling windows that take over part of the rest.

    ``running_chains`` is how many other pages of the resource are pending, ``chain_limit`` how
    many it may have (default: the policy's ``chains_per_resource``); ``splittable`` whether the
    processor filters this resource on its creation time (else a window must never be cut).
    """
    if fetched.next_cursor is None:
        return []
    query = page.query
    rest = _rest(page, fetched, order=order, policy=policy)
    limit = policy.chains_per_resource if chain_limit is None else chain_limit
    pieces = (
        None
        if rest is None or not splittable
        else _pieces(page, rest, order=order, policy=policy, room=limit - running_chains - 1)
    )
    if pieces is None:
        continuation = PageQuery(query.resource, query.window, fetched.next_cursor, query.limit)
        return [_child(page, continuation, None if rest is None else rest.pages)]
    narrowed, fresh_windows = pieces
    return [
        _child(
            page, PageQuery(query.resource, narrowed.window, fetched.next_cursor, query.limit), narrowed.pages
        ),
        # A fresh window's size is a guess from its neighbour's density until its own first page:
        # unknown, so that no resource's share is decided on guesses (see ``chain_share``).
        *(
            _child(page, PageQuery(query.resource, piece.window, None, query.limit), None)
            for piece in fresh_windows
        ),
    ]


def _child(parent: PlannedPage, query: PageQuery, estimated_pages: float | None) -> PlannedPage:
    return PlannedPage(
        page_id(parent.import_id, query), parent.import_id, query, parent.page_id, estimated_pages
    )


@dataclass(frozen=True, slots=True)
class _Piece:
    window: Window
    pages: float


@dataclass(frozen=True, slots=True)
class _Rest:
    """What is left of a window after a page: ``[start, end)`` on the time line and its estimated size."""

    start: int
    end: int
    pages: float


def _rest(
    page: PlannedPage, fetched: FetchedPage, *, order: ServeOrder, policy: SlicingPolicy
) -> _Rest | None:
    """The rest of the page's window, with its size estimated from the density of the page just served."""
    first, last = fetched.first_created, fetched.last_created
    served = len(fetched.objects)
    if fetched.next_cursor is None or first is None or last is None or served == 0:
        return None
    window = page.query.window
    if order is ServeOrder.NEWEST_FIRST:
        # The rest is [low, last], ties at ``last`` included.
        low = window.created_gte if window.created_gte is not None else min(policy.earliest_created_s, last)
        start, end = low, last + 1
    else:
        # The rest is [last, high).
        if window.created_lt is None:
            return None
        start, end = last, window.created_lt
    # The density of the objects just served, over their own span: the gap between a window's edge
    # and its first object (an account quiet lately, say) says little about the rest.
    served_span = abs(last - first) + 1
    pages = served / served_span * (end - start) / max(1, page.query.limit)
    return _Rest(start, end, pages)


def chain_share(resource: str, remaining: Mapping[str, float | None], policy: SlicingPolicy) -> int:
    """The chains a resource may run: the import's chains shared in proportion to the pages each
    resource is estimated to have left, so the resource that decides when the import ends gets
    the most of the store and the processor, and none more than its endpoint can use.

    ``remaining`` maps each resource with pending pages to its estimate, ``None`` while unknown
    (a window's first page is still pending): until every estimate is known, each gets the least
    share, so a cut waits a page for the sizes its last cut revealed.
    """
    if resource not in remaining or any(value is None for value in remaining.values()):
        return least_chain_share(policy)
    total = sum(value or 0.0 for value in remaining.values())
    if total <= 0:
        return least_chain_share(policy)
    share = round(policy.import_chains * (remaining[resource] or 0.0) / total)
    return max(least_chain_share(policy), min(policy.chains_per_resource, share))


def least_chain_share(policy: SlicingPolicy) -> int:
    """An estimate from one page can be far off: no resource gets fewer than a quarter of its chains."""
    return max(1, policy.chains_per_resource // 4)


def _pieces(
    page: PlannedPage, rest: _Rest, *, order: ServeOrder, policy: SlicingPolicy, room: int
) -> tuple[_Piece, list[_Piece]] | None:
    """The narrowed window the cursor continues in and the fresh windows, each with its estimated
    size, or ``None`` to not cut."""
    if room < 1:
        return None
    window = page.query.window
    newest_first = order is ServeOrder.NEWEST_FIRST
    width = rest.end - rest.start
    count = min(room + 1, policy.max_fanout, math.floor(rest.pages / policy.min_pages_per_slice), width)
    if count < 2:
        return None
    if newest_first and window.created_gte is None:
        # The far end is a guess (no account is older than the earliest plausible time, but most are
        # much younger): pieces double in width going back, so the years before the account existed
        # cost one request, not many, and the recent pieces, usually the densest, are the narrowest.
        cuts = _doubling_cuts(rest.start, rest.end, count)
    else:
        cuts = [rest.start + (i * width) // count for i in range(count + 1)]

    def piece(gte: int | None, lt: int | None, low: int, high: int) -> _Piece:
        return _Piece(Window(gte, lt), rest.pages * (high - low) / width)

    if newest_first:
        # The piece next to ``last`` continues with the cursor; the older ones start fresh.
        narrowed = piece(cuts[-2], window.created_lt, cuts[-2], cuts[-1])
        fresh = [piece(cuts[i], cuts[i + 1], cuts[i], cuts[i + 1]) for i in range(count - 1)]
        fresh[0] = piece(window.created_gte, cuts[1], cuts[0], cuts[1])
    else:
        narrowed = piece(window.created_gte, cuts[1], cuts[0], cuts[1])
        fresh = [piece(cuts[i], cuts[i + 1], cuts[i], cuts[i + 1]) for i in range(1, count)]
        fresh[-1] = piece(cuts[-2], window.created_lt, cuts[-2], cuts[-1])
    return narrowed, fresh


def _doubling_cuts(start: int, end: int, count: int) -> list[int]:
    """``count + 1`` ascending cuts from ``start`` to ``end``; the piece next to ``end`` is the
    narrowest and each piece further from it is twice as wide (at least one second each)."""
    width = end - start
    unit = width / (2**count - 1)
    cuts = [end]
    for index in range(count):
        cut = end - round(unit * (2 ** (index + 1) - 1))
        cuts.append(min(cut, cuts[-1] - 1))
    cuts[-1] = start
    ascending = cuts[::-1]
    if any(later <= earlier for earlier, later in itertools.pairwise(ascending)):
        return [start + (i * width) // count for i in range(count + 1)]
    return ascending
