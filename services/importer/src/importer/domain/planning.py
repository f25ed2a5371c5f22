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
import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from importer.domain.source import FetchedPage, PageQuery, Window

PAGE_SIZE: Final = 100
#: The fewest pages a piece of a cut window ever holds (see :func:`least_piece`).
SMALLEST_PIECE_PAGES: Final = 2.0
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
    #: Windows a resource that grows with the business (``plan_import``'s ``growing``) starts with.
    first_windows: int = 1


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
    growing: Collection[str] = (),
) -> list[PlannedPage]:
    """The first pages of an import: everything created up to the plan time, in one window per
    resource, or for the resources in ``growing`` in ``policy.first_windows`` windows.

    Objects created after the import was planned belong to the next import; the upper bound keeps a
    growing account from stretching an import without end.

    A growing resource (customers, subscriptions, invoices: as many as the business has had) is
    what an import waits for. Read through one window, its first page is all the import knows for a
    round trip, and only then is the rest cut into chains. Its first windows instead cover the time
    line from the plan time back to the earliest plausible one, each twice as wide as the one after
    it (the newest, usually the densest, the narrowest), so every one of them is read, and sized by
    its own first page, from the start. The oldest window is unbounded below: nothing older is ever
    left out. For an account younger than the oldest windows, those cost one empty page each.
    """
    pages: list[PlannedPage] = []
    end = planned_at_s + 1
    for resource in dict.fromkeys(resources):
        count = policy.first_windows if resource in growing else 1
        cuts = _doubling_cuts(policy.earliest_created_s, end, count) if count > 1 else [end, end]
        bounds: list[int | None] = [None, *cuts[1:]]
        for gte, lt in itertools.pairwise(bounds):
            query = PageQuery(resource, Window(gte, lt), None, policy.page_size)
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
    min_pages: float | None = None,
) -> list[PlannedPage]:
    """The pages ``page`` leads to: none when its window is exhausted, else the next page of the
    window, possibly with sibling windows that take over part of the rest.

    ``running_chains`` is how many other pages of the resource are pending, ``chain_limit`` how
    many it may have (default: the policy's ``chains_per_resource``); ``splittable`` whether the
    processor filters this resource on its creation time (else a window must never be cut);
    ``min_pages`` the least a piece may hold (default: the policy's ``min_pages_per_slice``).
    """
    if fetched.next_cursor is None:
        return []
    query = page.query
    rest = _rest(page, fetched, order=order, policy=policy)
    limit = policy.chains_per_resource if chain_limit is None else chain_limit
    pieces = (
        None
        if rest is None or not splittable
        else _pieces(
            page,
            rest,
            order=order,
            policy=policy,
            room=limit - running_chains - 1,
            min_pages=policy.min_pages_per_slice if min_pages is None else min_pages,
        )
    )
    if pieces is None:
        continuation = PageQuery(query.resource, query.window, fetched.next_cursor, query.limit)
        return [_child(page, continuation, None if rest is None else rest.pages)]
    narrowed, fresh_windows = pieces
    # A fresh window's size is its neighbour's density over its width until its own first page
    # says better; a guess, but a resource's share of the chains needs every window counted
    # (see ``chain_share``), and waiting for the first pages would hold the import back. Not so
    # for the pieces of a window reaching back to the earliest plausible time: the account began
    # somewhere in it, unknown, so the newest page's density over those years says nothing of
    # what each piece holds (a small account's eight pieces summed to four times its pages), and
    # such a guess, counted among its resource's chains, held back the cuts that the pieces' own
    # first pages would call for (``worth_cutting``, ``least_piece``). They stay unsized (counted
    # as none left) until their first page is served, a round trip later.
    guessed = order is ServeOrder.NEWEST_FIRST and query.window.created_gte is None
    return [
        _child(
            page, PageQuery(query.resource, narrowed.window, fetched.next_cursor, query.limit), narrowed.pages
        ),
        *(
            _child(
                page,
                PageQuery(query.resource, piece.window, None, query.limit),
                None if guessed else piece.pages,
            )
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
    """The chains a resource may run, so that every resource ends about when the largest one does.

    The resource estimated to have the most pages left decides when the import ends: it gets all
    the chains one resource may run. Each other resource gets chains in proportion to its size
    beside the largest (rounded up), enough to end with it and no more: a chain that is not needed
    takes the store and the processor from the one that is. When the shares add up to more than
    the import's chains, all are scaled down alike.

    ``remaining`` maps each resource with pending pages to its estimate, ``None`` while unknown
    (an import's first page of a resource, until it is served). Unknown resources are left out:
    the first resource served starts as if it were the largest, since waiting for the others'
    first pages costs every resource time, while a share too large costs only chains that end
    early. A resource whose own size is unknown gets the least share.
    """
    own = remaining.get(resource)
    if own is None:
        return least_chain_share(policy)
    sizes = {name: max(0.0, value) for name, value in remaining.items() if value is not None}
    largest = max(sizes.values())
    if largest <= 0:
        return least_chain_share(policy)
    shares = {name: math.ceil(policy.chains_per_resource * size / largest) for name, size in sizes.items()}
    total = sum(shares.values())
    share = shares[resource]
    if total > policy.import_chains:
        share = math.floor(share * policy.import_chains / total)
    return max(1, min(policy.chains_per_resource, share))


def worth_cutting(left: float, others: list[float]) -> bool:
    """Whether a window estimated to hold ``left`` pages should be the one cut to add chains, beside
    the other chains of its resource estimated to hold ``others``.

    Only a window at least as large as the median chain's is cut: cutting the larger rests makes
    windows that end together, where cutting whichever page came first makes small windows that
    end early, each ending with a partly filled page and calling for yet another cut. (The median,
    not the mean: a fresh window's size is a guess, and one far-off guess must not stop every cut.)
    """
    return left >= statistics.median([left, *others])


def least_piece(others: list[float], policy: SlicingPolicy) -> float:
    """The fewest pages a piece of a cut window may hold, given what the resource's other chains
    are estimated to hold: ``min_pages_per_slice`` while they hold more (each window ends with a
    partly filled page, so small pieces cost requests), less once they are about to end, so that
    the last large window is shared out instead of being walked alone while the others are done.
    """
    if not others:
        return float(policy.min_pages_per_slice)
    return max(SMALLEST_PIECE_PAGES, min(float(policy.min_pages_per_slice), statistics.median(others)))


def least_chain_share(policy: SlicingPolicy) -> int:
    """An estimate from one page can be far off: no resource gets fewer than a quarter of its chains."""
    return max(1, policy.chains_per_resource // 4)


def _pieces(
    page: PlannedPage, rest: _Rest, *, order: ServeOrder, policy: SlicingPolicy, room: int, min_pages: float
) -> tuple[_Piece, list[_Piece]] | None:
    """The narrowed window the cursor continues in and the fresh windows, each with its estimated
    size, or ``None`` to not cut."""
    if room < 1:
        return None
    window = page.query.window
    newest_first = order is ServeOrder.NEWEST_FIRST
    width = rest.end - rest.start
    count = min(room + 1, policy.max_fanout, math.floor(rest.pages / max(1.0, min_pages)), width)
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
