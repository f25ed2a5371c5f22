"""Keeping an account fresh after its import (SPEC "Keeping data fresh"): the pure rules.

- Which stored record a processor object lives in (:func:`record_type_of`), so a deletion knows
  what to remove and which topic gets the tombstone.
- The poll cursor (:func:`plan_poll`): an event list is read from the second of the last applied
  event, inclusive (``created`` has one-second resolution and many events share a second), and the
  events already applied at that second are skipped. A poll reads a bounded number of pages: Stripe
  lists events newest first, so a list cut there lacks the oldest events, not the newest; the
  cursor then stays and the next polls read on toward older events from where the last one stopped
  (:class:`EventSweep`), and the cursor moves (and ``synced_through`` with it) only once that sweep
  reaches the list's end. Chargebee lists oldest first: a cut list only leaves the newest for later.
- Records read through another object (:func:`dependents_of`): Stripe prices and plans take their
  ``name`` from their product, so a product's change re-reads its prices and plans.
- A Stripe deauthorization in the event list ends the account's sync (:func:`deauthorization_in`).
- The ordering rule (:func:`supersedes`): a record is written only over an older version of it.
  Objects are re-read from the processor before they are stored, so a record always ends equal to
  the processor's state; the version says which of two reads is newer: Chargebee's
  ``resource_version``, or for Stripe (which has none) the instant of the read, in milliseconds.
- Covering (:func:`covered`): a read sent at or after the instant by which a change had surely
  happened brings the record to it (or further), so the change needs no read of its own.
- Listing instead of re-reading (:func:`worth_listing`): when more objects of one resource wait for
  a re-read than a few times the pages that list the whole resource, one listing of it (the import's
  paged list) reads them all, each page the processor's current state of what it holds; the list is
  read in parallel windows of creation time (:func:`list_windows`), cut where the stored records say
  each holds about as many objects, as the import's chains are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from contracts.events import Processor
from contracts.records import (
    CanonicalRecord,
    CouponRecord,
    CustomerRecord,
    InvoiceRecord,
    PriceRecord,
    SubscriptionRecord,
)
from contracts.sync import STRIPE_DEAUTHORIZED, beyond_event_history

from importer.domain.source import Window

#: The cursor starts this long before the import began: changes made meanwhile are not lost.
CURSOR_LEAD: Final = timedelta(minutes=1)
#: Event ids remembered as applied (those at the cursor's second, and webhooks' since).
MAX_APPLIED_IDS: Final = 2000

#: Objects a list page holds (the import's pages: Stripe and Chargebee both serve at most 100).
LIST_PAGE_SIZE: Final = 100
#: A resource is listed when more of its objects wait for a re-read than this many times the pages
#: that list it: a page then replaces this many re-reads at least.
LIST_FACTOR: Final = 2
#: Nor fewer than this many: a connection re-reads this many objects at once
#: (``service.sync_work.OBJECTS_IN_FLIGHT``), so fewer do not wait on each other's re-reads.
LIST_MIN_WAITING: Final = 16
#: Windows a listing reads at once at most (the import's chains of one resource, Stripe live).
LIST_CHAINS: Final = 20

#: The processor's object type (Stripe ``object``, Chargebee content key) → the list resource.
_RESOURCES: Final[Mapping[Processor, Mapping[str, str]]] = {
    Processor.STRIPE: {
        "customer": "customers",
        "subscription": "subscriptions",
        "invoice": "invoices",
        "coupon": "coupons",
        "price": "prices",
        "plan": "plans",
        "product": "products",
    },
    Processor.CHARGEBEE: {
        "customer": "customers",
        "subscription": "subscriptions",
        "invoice": "invoices",
        "coupon": "coupons",
        "plan": "plans",
        "addon": "addons",
        "item": "items",
        "item_price": "item_prices",
    },
}

_RECORD_TYPES: Final[Mapping[str, type[CanonicalRecord]]] = {
    "customers": CustomerRecord,
    "subscriptions": SubscriptionRecord,
    "invoices": InvoiceRecord,
    "coupons": CouponRecord,
    "prices": PriceRecord,
    "plans": PriceRecord,
    "addons": PriceRecord,
    "item_prices": PriceRecord,
}


#: Resources whose records take fields from an object of another resource (read expanded): a change
#: of that object re-reads them. Stripe prices and plans are named after their product.
_DEPENDENTS: Final[Mapping[Processor, Mapping[str, tuple[str, ...]]]] = {
    Processor.STRIPE: {"products": ("prices", "plans")},
    Processor.CHARGEBEE: {},
}


def dependents_of(processor: Processor, resource: str) -> tuple[str, ...]:
    """The resources whose records are read through an object of ``resource`` (its own records,
    if any, aside): what a change of that object re-reads, listed by it."""
    return _DEPENDENTS[processor].get(resource, ())


#: Resources whose objects of one id are one record: Stripe's plans are its prices of the legacy API
#: (a plan is also served as the price of the same id, and the import stores them as one record).
_SAME_RECORD: Final[Mapping[Processor, Mapping[str, str]]] = {
    Processor.STRIPE: {"plans": "prices", "prices": "plans"},
    Processor.CHARGEBEE: {},
}


def same_record_as(processor: Processor, resource: str) -> str | None:
    """The other resource whose object of the same id is stored as the same record, if any: an
    object gone from ``resource`` leaves its record only once that one is gone too."""
    return _SAME_RECORD[processor].get(resource)


def resource_of(processor: Processor, object_type: str | None) -> str | None:
    """The resource of an event's object; ``None`` for objects the import does not copy."""
    return None if object_type is None else _RESOURCES[processor].get(object_type)


def record_type_of(resource: str) -> type[CanonicalRecord] | None:
    """The record a resource's objects are stored as; ``None`` for those without one (products)."""
    return _RECORD_TYPES.get(resource)


@dataclass(frozen=True, slots=True)
class ProcessorChange:
    """One event of a processor's event list (or webhook): which object changed, and when."""

    event_id: str
    event_type: str
    created: int
    object_type: str | None
    object_id: str | None
    resource_version: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectRef:
    resource: str
    object_id: str


@dataclass(frozen=True, slots=True)
class ListedEvents:
    """What one poll read of the event list: the events (any order), and whether it reached the end."""

    events: Sequence[ProcessorChange]
    #: Whether the list was read to its end (else the poll's cap of pages cut it).
    complete: bool = True
    #: A list read newest first (Stripe) and cut: the id of the last (oldest) event read, after
    #: which the next poll reads on (``starting_after``).
    continue_after: str | None = None


@dataclass(frozen=True, slots=True)
class EventSweep:
    """A newest-first read of the event list (Stripe's) that one poll's cap cut: the next polls read
    on toward older events, from the cursor's second up to where the last one stopped.

    The cursor stays meanwhile; once the list's end is reached it moves to ``top_s``, the newest
    second listed when the sweep began, remembering the ids listed at that second (``top_ids``), and
    every change made before the sweep began (``began_at``) is applied. Events created since the
    sweep began are newer than it reads: the poll after the sweep lists them, from ``top_s`` on."""

    #: The oldest event read so far: the next poll lists the events after it (older ones).
    after_id: str
    top_s: int
    top_ids: Sequence[str]
    began_at: datetime


@dataclass(frozen=True, slots=True)
class PollPlan:
    #: The objects to re-read, each once, in the order of their first event (oldest first).
    objects: Sequence[ObjectRef]
    #: Where the next poll starts (Unix seconds, inclusive) and the ids already applied at it.
    cursor_s: int
    applied_ids: Sequence[str]
    #: The newest event's time, if any event was new.
    newest_created: int | None
    new_events: int = 0
    skipped_ids: Sequence[str] = field(default_factory=tuple)
    #: The sweep the next poll goes on with (the list was cut newest first); ``None`` once it ended.
    sweep: EventSweep | None = None
    #: Every change made before this instant is applied once the plan's objects are; ``None`` while
    #: the list was not read to its end (a sweep goes on, or an oldest-first list was cut).
    synced_through: datetime | None = None


def plan_poll(
    processor: Processor,
    listed: ListedEvents,
    *,
    cursor_s: int,
    applied_ids: Iterable[str],
    started: datetime,
    sweep: EventSweep | None = None,
) -> PollPlan:
    """What to apply from one read of the event list, and the cursor after it.

    ``listed`` holds events created at or after ``cursor_s``, in any order (``started``: when the
    poll began; ``sweep``: the one it went on with, if any). Events already applied are skipped.
    A complete read moves the cursor to the newest event's second, and remembers which ids it
    holds, so the next poll (which starts at that second again) skips exactly those; a sweep's last
    read moves it to the sweep's ``top_s`` instead. A read cut newest first keeps the cursor and
    says where the next poll goes on (:class:`EventSweep`); one cut oldest first moves the cursor
    (the newest event read is where the list stopped) but not ``synced_through``.
    """
    applied = list(applied_ids)
    already = set(applied)
    if sweep is not None:
        already.update(sweep.top_ids)
    events = sorted((e for e in listed.events if e.created >= cursor_s), key=lambda e: e.created)
    fresh = [e for e in events if e.event_id not in already]
    objects: dict[ObjectRef, None] = {}
    for event in fresh:
        resource = resource_of(processor, event.object_type)
        if resource is not None and event.object_id:
            objects.setdefault(ObjectRef(resource, event.object_id), None)
    read = PollPlan(
        objects=list(objects),
        cursor_s=cursor_s,
        applied_ids=applied[-MAX_APPLIED_IDS:],
        newest_created=max((e.created for e in fresh), default=None),
        new_events=len(fresh),
        skipped_ids=[e.event_id for e in events if e.event_id in already],
    )
    top_s = max((e.created for e in events), default=cursor_s) if sweep is None else sweep.top_s
    at_top = [e.event_id for e in events if e.created == top_s]
    if sweep is not None:
        at_top = list(dict.fromkeys([*sweep.top_ids, *at_top]))
    if listed.continue_after is not None:
        # Cut newest first: the oldest events since the cursor are still unread. The cursor stays.
        began_at = started if sweep is None else sweep.began_at
        going_on = EventSweep(listed.continue_after, top_s, at_top[-MAX_APPLIED_IDS:], began_at)
        return replace(read, sweep=going_on)
    if top_s == cursor_s:
        at_top = list(dict.fromkeys([*read.applied_ids, *at_top]))
    through = (started if sweep is None else sweep.began_at) if listed.complete else None
    return replace(read, cursor_s=top_s, applied_ids=at_top[-MAX_APPLIED_IDS:], synced_through=through)


def deauthorization_in(
    processor: Processor,
    listed: Iterable[ProcessorChange],
    *,
    cursor_s: int,
    applied_ids: Iterable[str],
    connected_since: datetime | None = None,
) -> ProcessorChange | None:
    """The first Stripe ``account.application.deauthorized`` among the events not applied yet: the
    account removed our platform's access, so its sync ends there. One from before the connection
    was (re)connected (``connected_since``) is about credentials it no longer holds, and is ignored."""
    if processor is not Processor.STRIPE:
        return None
    already = set(applied_ids)
    since_s = cursor_s if connected_since is None else max(cursor_s, int(connected_since.timestamp()))
    found = [
        event
        for event in listed
        if event.event_type == STRIPE_DEAUTHORIZED
        and event.created >= since_s
        and event.event_id not in already
    ]
    return min(found, key=lambda event: event.created, default=None)


def supersedes(new_version: int, stored_version: int | None) -> bool:
    """Whether a read at ``new_version`` may replace what is stored: never an older one. The same
    version is the same state, written again so that a redelivery publishes it again."""
    return stored_version is None or new_version >= stored_version


def covered(last_read: datetime | None, changed_before: datetime | None) -> bool:
    """Whether a read sent at ``last_read`` (and applied) brought the record to a change that had
    surely happened by ``changed_before``; an unknown change instant is covered by no earlier read."""
    return changed_before is not None and last_read is not None and last_read >= changed_before


def list_pages(objects: int, *, page_size: int = LIST_PAGE_SIZE) -> int:
    """The pages a list of ``objects`` takes (one at least: an empty list is one request)."""
    return max(1, math.ceil(objects / page_size))


def worth_listing(
    waiting: int,
    known_objects: int,
    *,
    factor: int = LIST_FACTOR,
    minimum: int = LIST_MIN_WAITING,
    page_size: int = LIST_PAGE_SIZE,
) -> bool:
    """Whether ``waiting`` distinct objects of a resource that holds about ``known_objects`` are
    cheaper read by listing the whole resource than by one retrieve each: more of them than
    ``factor`` times the list's pages, and at least ``minimum``."""
    return waiting >= minimum and waiting > factor * list_pages(known_objects, page_size=page_size)


def list_windows(created: Sequence[int], chains: int, *, page_size: int = LIST_PAGE_SIZE) -> list[Window]:
    """Windows of creation time (Unix seconds) that split one listing of a resource into chains read
    at once: as many as its pages, at most ``chains``, cut at the creation times of the stored
    records (``created``, any order) so that each holds about as many of them.

    The windows are half-open and cover the whole time line, unbounded at both ends, so every object
    at the processor (stored or not, created since or long before) is in exactly one of them, and
    objects sharing a second are in the same one; where the cuts fall only decides how even the
    chains are.
    """
    ordered = sorted(created)
    pieces = min(max(1, chains), list_pages(len(ordered), page_size=page_size))
    cuts = sorted({ordered[len(ordered) * piece // pieces] for piece in range(1, pieces)})
    bounds: list[int | None] = [None, *(cut for cut in cuts if cut > ordered[0]), None]
    return [Window(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def beyond_history(processor: Processor, cursor: datetime, now: datetime) -> bool:
    """Whether polling from ``cursor`` can no longer see every change (``contracts.sync.EVENT_HISTORY``)."""
    return beyond_event_history(processor, cursor, now)


def cursor_for_import(import_created_at: datetime) -> datetime:
    """Where sync starts after an import: a little before the import began."""
    return import_created_at - CURSOR_LEAD


@dataclass(frozen=True, slots=True)
class SyncState:
    """A connection's sync, as the ``sync_state`` collection holds it (``_id`` = connection id)."""

    connection_id: str
    account_id: str
    processor: Processor
    processor_account_id: str
    status: str
    #: Unix second the next poll starts at (inclusive), and the event ids already applied from it on.
    cursor_s: int
    applied_ids: Sequence[str] = ()
    contact_email: str = ""
    mode: str | None = None
    last_event_at: datetime | None = None
    synced_through: datetime | None = None
    #: A fresh import asked for because the cursor fell out of the processor's history.
    resync_import_id: str | None = None
    #: A read of the event list cut by a poll's cap, which the next poll goes on with.
    sweep: EventSweep | None = None
