"""The pure rules of sync: the poll cursor over one-second ties, and the ordering of versions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from contracts.events import Processor
from importer.domain.source import Window
from importer.domain.sync import (
    EventSweep,
    ListedEvents,
    ObjectRef,
    PollPlan,
    ProcessorChange,
    beyond_history,
    covered,
    cursor_for_import,
    dependents_of,
    list_pages,
    list_windows,
    plan_poll,
    record_type_of,
    resource_of,
    supersedes,
    worth_listing,
)

STARTED = datetime(2026, 12, 3, 18, tzinfo=UTC)


def change(
    event_id: str, created: int, object_id: str = "cus_1", object_type: str = "customer"
) -> ProcessorChange:
    return ProcessorChange(event_id, f"{object_type}.updated", created, object_type, object_id)


def test_a_poll_applies_each_changed_object_once_oldest_first() -> None:
    listed = [
        change("evt_3", 105, "cus_b"),
        change("evt_1", 100, "cus_a"),
        change("evt_2", 103, "cus_b"),
        change("evt_4", 105, "sub_1", "subscription"),
    ]

    plan = plan_poll(Processor.STRIPE, ListedEvents(listed), cursor_s=100, applied_ids=(), started=STARTED)

    assert plan.objects == [
        ObjectRef("customers", "cus_a"),
        ObjectRef("customers", "cus_b"),
        ObjectRef("subscriptions", "sub_1"),
    ]
    assert (plan.cursor_s, sorted(plan.applied_ids)) == (105, ["evt_3", "evt_4"])
    assert plan.newest_created == 105
    assert (plan.synced_through, plan.sweep) == (STARTED, None)


def test_the_next_poll_starts_at_the_same_second_and_skips_what_it_applied() -> None:
    first = plan_poll(
        Processor.STRIPE,
        ListedEvents([change("evt_1", 200, "cus_a")]),
        cursor_s=150,
        applied_ids=(),
        started=STARTED,
    )
    # A second event in the same second, listed only by the next poll, is still applied.
    again = plan_poll(
        Processor.STRIPE,
        ListedEvents([change("evt_1", 200, "cus_a"), change("evt_2", 200, "cus_b")]),
        cursor_s=first.cursor_s,
        applied_ids=first.applied_ids,
        started=STARTED,
    )

    assert again.objects == [ObjectRef("customers", "cus_b")]
    assert again.skipped_ids == ["evt_1"]
    assert (again.cursor_s, sorted(again.applied_ids)) == (200, ["evt_1", "evt_2"])


def test_a_poll_without_new_events_keeps_its_cursor_and_applied_ids() -> None:
    plan = plan_poll(
        Processor.STRIPE,
        ListedEvents([change("evt_1", 300)]),
        cursor_s=300,
        applied_ids=["evt_1", "evt_w"],
        started=STARTED,
    )

    assert plan.objects == []
    assert (plan.cursor_s, set(plan.applied_ids), plan.newest_created) == (300, {"evt_1", "evt_w"}, None)


def test_events_of_objects_the_import_does_not_copy_move_the_cursor_only() -> None:
    listed = [change("evt_1", 10, "acct_1", "account"), change("evt_2", 11, None, "customer")]  # type: ignore[arg-type]

    plan = plan_poll(Processor.STRIPE, ListedEvents(listed), cursor_s=0, applied_ids=(), started=STARTED)

    assert plan.objects == []
    assert plan.cursor_s == 11


def newest_first_polls(
    events: list[ProcessorChange], cap: int, *, cursor_s: int, applied_ids: tuple[str, ...] = ()
) -> list[PollPlan]:
    """Polls of a Stripe event list (newest first) that read ``cap`` events each, until one moves
    the cursor: each goes on after the last event the one before read, as the reader does."""
    listed = sorted((e for e in events if e.created >= cursor_s), key=lambda e: e.created)[::-1]
    plans: list[PollPlan] = []
    sweep: EventSweep | None = None
    start = 0
    while True:
        read = listed[start : start + cap]
        start += cap
        cut = start < len(listed)
        page = ListedEvents(read, complete=not cut, continue_after=read[-1].event_id if cut else None)
        started = STARTED + timedelta(minutes=len(plans))
        plan = plan_poll(
            Processor.STRIPE, page, cursor_s=cursor_s, applied_ids=applied_ids, started=started, sweep=sweep
        )
        plans.append(plan)
        sweep = plan.sweep
        if sweep is None:
            return plans


def test_a_stripe_list_cut_by_the_cap_is_read_on_by_the_next_polls_before_the_cursor_moves() -> None:
    # Newest first: the first poll reads the newest events; the oldest wait for the next polls.
    events = [change(f"evt_{n}", 100 + n // 3, f"cus_{n}") for n in range(10)]  # seconds 100..103

    plans = newest_first_polls(events, 4, cursor_s=100)

    assert len(plans) == 3
    applied = [ref.object_id for plan in plans for ref in plan.objects]
    assert sorted(applied) == sorted(f"cus_{n}" for n in range(10))  # every event's object, once
    first, second, last = plans
    # Until the sweep ends the cursor stays, and nothing says the account is caught up.
    for plan in (first, second):
        assert (plan.cursor_s, plan.synced_through) == (100, None)
    assert first.sweep == EventSweep("evt_6", 103, ["evt_9"], STARTED)
    assert second.sweep == EventSweep("evt_2", 103, ["evt_9"], STARTED)
    # The end: the cursor moves to the newest second the sweep began with, remembering its ids, and
    # everything changed before the sweep's first poll began is applied.
    assert (last.cursor_s, list(last.applied_ids), last.sweep) == (103, ["evt_9"], None)
    assert last.synced_through == STARTED


def test_a_sweep_skips_the_events_applied_at_the_cursor_and_at_its_top() -> None:
    events = [change("evt_a", 100, "cus_a"), change("evt_b", 101, "cus_b"), change("evt_c", 102, "cus_c")]
    sweep = EventSweep("evt_c", 102, ["evt_c"], STARTED)
    # The next page (older events) holds evt_c again (a tie reordered) and evt_a, applied by a webhook.
    plan = plan_poll(
        Processor.STRIPE,
        ListedEvents(events[::-1]),
        cursor_s=100,
        applied_ids=["evt_a"],
        started=STARTED + timedelta(minutes=1),
        sweep=sweep,
    )

    assert plan.objects == [ObjectRef("customers", "cus_b")]
    assert sorted(plan.skipped_ids) == ["evt_a", "evt_c"]
    assert (plan.cursor_s, list(plan.applied_ids), plan.synced_through) == (102, ["evt_c"], STARTED)


def test_a_sweep_within_the_cursor_s_second_keeps_every_id_applied_at_it() -> None:
    events = [change(f"evt_{n}", 100, f"cus_{n}") for n in range(5)]

    plans = newest_first_polls(events, 2, cursor_s=100, applied_ids=("evt_w",))

    assert plans[-1].cursor_s == 100
    assert sorted(plans[-1].applied_ids) == ["evt_0", "evt_1", "evt_2", "evt_3", "evt_4", "evt_w"]
    assert sorted(ref.object_id for plan in plans for ref in plan.objects) == [f"cus_{n}" for n in range(5)]


def test_a_chargebee_list_cut_by_the_cap_moves_the_cursor_but_not_synced_through() -> None:
    # Oldest first: the events read are the oldest, so the cursor may move to the newest of them;
    # the next poll reads on from that second.
    read = [change("ev_1", 100, "cus_a"), change("ev_2", 101, "cus_b")]

    plan = plan_poll(
        Processor.CHARGEBEE, ListedEvents(read, complete=False), cursor_s=100, applied_ids=(), started=STARTED
    )

    assert (plan.cursor_s, list(plan.applied_ids), plan.sweep) == (101, ["ev_2"], None)
    assert plan.synced_through is None


def test_a_stripe_product_s_change_re_reads_its_prices_and_plans() -> None:
    assert dependents_of(Processor.STRIPE, "products") == ("prices", "plans")
    assert dependents_of(Processor.STRIPE, "customers") == ()
    assert dependents_of(Processor.CHARGEBEE, "items") == ()


def test_chargebee_object_types_map_to_its_resources() -> None:
    assert resource_of(Processor.CHARGEBEE, "item_price") == "item_prices"
    assert resource_of(Processor.CHARGEBEE, "subscription") == "subscriptions"
    assert resource_of(Processor.STRIPE, "plan") == "plans"
    assert resource_of(Processor.STRIPE, "balance") is None
    assert record_type_of("item_prices") is not None
    assert record_type_of("products") is None


def test_a_record_is_never_replaced_by_an_older_version() -> None:
    assert supersedes(5, None)
    assert supersedes(6, 5)
    # The same version is the same state: written again, so a redelivery publishes it again.
    assert supersedes(5, 5)
    assert not supersedes(4, 5)


def test_reordered_reads_end_on_the_newest_whatever_the_order() -> None:
    for order in ([1, 2, 3], [3, 1, 2], [2, 3, 1], [3, 2, 1]):
        stored: int | None = None
        for version in order:
            if supersedes(version, stored):
                stored = version
        assert stored == 3


def test_stripe_history_ends_after_thirty_days_and_sync_starts_before_the_import() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert not beyond_history(Processor.STRIPE, now - timedelta(days=29), now)
    assert beyond_history(Processor.STRIPE, now - timedelta(days=30), now)
    assert beyond_history(Processor.CHARGEBEE, now - timedelta(days=90), now)
    assert not beyond_history(Processor.CHARGEBEE, now - timedelta(days=29), now)
    assert cursor_for_import(now) < now


def test_a_read_sent_after_a_change_covers_it_and_an_earlier_one_does_not() -> None:
    change_by = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert covered(change_by, change_by)
    assert covered(change_by + timedelta(milliseconds=1), change_by)
    assert not covered(change_by - timedelta(milliseconds=1), change_by)
    assert not covered(None, change_by)
    assert not covered(change_by, None)  # when the change happened is unknown: read again


def test_a_resource_is_listed_when_more_objects_wait_than_twice_its_pages() -> None:
    assert [list_pages(n) for n in (0, 1, 100, 101, 2000)] == [1, 1, 1, 2, 20]
    assert not worth_listing(40, 2000)  # 20 pages: 40 re-reads cost no more than listing
    assert worth_listing(41, 2000)
    assert not worth_listing(128, 100_000)  # 1,000 pages for 128 objects: re-read them
    # A small resource: listed once as many wait as one connection re-reads at once.
    assert not worth_listing(15, 10)
    assert worth_listing(16, 10)


def test_a_listing_is_cut_into_windows_holding_about_as_many_stored_objects() -> None:
    created = [1000 + n // 4 for n in range(2000)]  # four objects a second

    windows = list_windows(created, 20)

    assert len(windows) == 20  # as many as the list's pages
    assert windows[0] == Window(None, windows[1].created_gte)
    assert windows[-1].created_lt is None  # objects created since are in the last one
    for before, after in itertools.pairwise(windows):
        assert before.created_lt == after.created_gte  # no gap, no overlap
    for moment in (0, *created, 10**10):
        assert sum(window.contains(moment) for window in windows) == 1
    assert {sum(window.contains(c) for c in created) for window in windows} == {100}


def test_a_listing_has_no_more_windows_than_pages_nor_chains() -> None:
    assert list_windows([], 20) == [Window()]
    assert list_windows(list(range(150)), 20) == [Window(None, 75), Window(75, None)]
    assert len(list_windows(list(range(10_000)), 20)) == 20
    assert list_windows(list(range(10_000)), 1) == [Window()]
    # Every stored object in one second: one window (no cut can split a second).
    assert list_windows([5] * 1000, 20) == [Window()]
