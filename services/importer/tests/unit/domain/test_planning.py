"""Page planning: windows and cursors serve every object exactly once, however the pages split."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest
from importer.domain.planning import (
    EARLIEST_CREATED_S,
    PlannedPage,
    ServeOrder,
    SlicingPolicy,
    next_pages,
    page_id,
    plan_import,
)
from importer.domain.source import FetchedPage, PageQuery, Window

NOW = 1_750_000_000
DAY = 86_400


class SimulatedList:
    """A processor's list endpoint over (created, id) objects: newest first with ``starting_after``
    (Stripe), or oldest first with a numeric ``offset`` into the filtered list (a plain offset is the
    strictest case: it stays valid only if the objects already passed do not change)."""

    def __init__(self, objects: Sequence[tuple[int, str]], order: ServeOrder) -> None:
        self.objects = list(objects)
        self.order = order
        self.requests = 0

    def fetch(self, query: PageQuery) -> FetchedPage:
        self.requests += 1
        window = query.window
        chosen = sorted(
            (item for item in self.objects if window.contains(item[0])),
            reverse=self.order is ServeOrder.NEWEST_FIRST,
        )
        if self.order is ServeOrder.NEWEST_FIRST:
            start = 0
            if query.cursor is not None:
                ids = [object_id for _, object_id in chosen]
                start = ids.index(query.cursor) + 1
            page = chosen[start : start + query.limit]
            more = start + query.limit < len(chosen)
            cursor = page[-1][1] if more and page else None
        else:
            start = int(query.cursor or 0)
            page = chosen[start : start + query.limit]
            more = start + query.limit < len(chosen)
            cursor = str(start + query.limit) if more else None
        return FetchedPage(
            objects=[{"id": object_id, "created": created} for created, object_id in page],
            next_cursor=cursor,
            first_created=page[0][0] if page else None,
            last_created=page[-1][0] if page else None,
        )


def run_import(
    source: SimulatedList,
    policy: SlicingPolicy,
    *,
    splittable: bool = True,
    seed: int = 0,
    growing: bool = False,
) -> tuple[list[str], int]:
    """Every page of one resource, taken from the pending set in random order; the ids served."""
    rng = random.Random(seed)
    pending: list[PlannedPage] = plan_import(
        "imp", ["customers"], planned_at_s=NOW, policy=policy, growing=["customers"] if growing else ()
    )
    seen_pages: set[str] = {page.page_id for page in pending}
    served: list[str] = []
    while pending:
        page = pending.pop(rng.randrange(len(pending)))
        fetched = source.fetch(page.query)
        served += [str(obj["id"]) for obj in fetched.objects]
        children = next_pages(
            page,
            fetched,
            order=source.order,
            policy=policy,
            splittable=splittable,
            running_chains=len(pending),
        )
        for child in children:
            assert child.page_id not in seen_pages, "a page was planned twice"
            seen_pages.add(child.page_id)
        pending += children
    return served, len(seen_pages)


def dataset(seed: int, count: int, *, ties: int) -> list[tuple[int, str]]:
    """Objects over two years, denser lately, with bursts of identical timestamps."""
    rng = random.Random(seed)
    bursts = [NOW - rng.randrange(1, 700) * DAY for _ in range(3)]
    objects = []
    for index in range(count):
        if index < ties:
            created = bursts[index % len(bursts)]
        else:
            created = NOW - int(730 * DAY * (1 - rng.random() ** 0.5)) - 1
        objects.append((created, f"obj_{index:06d}"))
    return objects


@pytest.mark.parametrize("order", list(ServeOrder))
@pytest.mark.parametrize("seed", range(6))
def test_every_object_is_served_exactly_once(order: ServeOrder, seed: int) -> None:
    objects = dataset(seed, 3_000, ties=seed * 120)
    source = SimulatedList(objects, order)

    served, pages = run_import(source, SlicingPolicy(chains_per_resource=8, min_pages_per_slice=2), seed=seed)

    assert sorted(served) == sorted(object_id for _, object_id in objects)
    assert len(served) == len(set(served))
    assert pages == source.requests


@pytest.mark.parametrize("order", list(ServeOrder))
@pytest.mark.parametrize("seed", range(3))
def test_an_import_that_starts_with_several_windows_serves_every_object_exactly_once(
    order: ServeOrder, seed: int
) -> None:
    objects = dataset(seed, 3_000, ties=seed * 120)
    objects.append((EARLIEST_CREATED_S - 10 * DAY, "obj_before_the_earliest_time"))
    source = SimulatedList(objects, order)
    policy = SlicingPolicy(chains_per_resource=8, min_pages_per_slice=2, first_windows=6)

    served, pages = run_import(source, policy, seed=seed, growing=True)

    assert sorted(served) == sorted(object_id for _, object_id in objects)
    assert len(served) == len(set(served))
    assert pages == source.requests


@pytest.mark.parametrize("order", list(ServeOrder))
def test_a_burst_of_one_timestamp_larger_than_many_pages_is_served_once(order: ServeOrder) -> None:
    instant = NOW - 30 * DAY
    objects = [(instant, f"burst_{index:05d}") for index in range(1_050)]
    objects += [(instant - 1, "just_before"), (instant + 1, "just_after")]
    source = SimulatedList(objects, order)

    served, _ = run_import(source, SlicingPolicy(chains_per_resource=10, min_pages_per_slice=1))

    assert sorted(served) == sorted(object_id for _, object_id in objects)


@pytest.mark.parametrize("order", list(ServeOrder))
def test_a_large_window_fans_out_into_parallel_chains(order: ServeOrder) -> None:
    rng = random.Random(7)
    objects = [(NOW - rng.randrange(1, 400 * DAY), f"obj_{index:05d}") for index in range(5_000)]
    policy = SlicingPolicy(chains_per_resource=10, min_pages_per_slice=4)
    root = plan_import("imp", ["customers"], planned_at_s=NOW, policy=policy)[0]
    source = SimulatedList(objects, order)

    children = next_pages(
        root, source.fetch(root.query), order=order, policy=policy, splittable=True, running_chains=0
    )

    assert 2 <= len(children) <= policy.max_fanout
    assert sum(1 for child in children if child.query.cursor is not None) == 1
    assert all(child.parent_id == root.page_id for child in children)


def test_chains_never_exceed_the_resource_budget() -> None:
    objects = dataset(3, 4_000, ties=0)
    policy = SlicingPolicy(chains_per_resource=5, min_pages_per_slice=1)
    source = SimulatedList(objects, ServeOrder.NEWEST_FIRST)
    pending = plan_import("imp", ["customers"], planned_at_s=NOW, policy=policy)
    most = 0
    while pending:
        page = pending.pop(0)
        pending += next_pages(
            page,
            source.fetch(page.query),
            order=source.order,
            policy=policy,
            splittable=True,
            running_chains=len(pending),
        )
        most = max(most, len(pending))
    assert most <= policy.chains_per_resource


def test_a_window_the_processor_cannot_filter_is_never_cut() -> None:
    objects = dataset(4, 1_500, ties=0)
    source = SimulatedList(objects, ServeOrder.OLDEST_FIRST)

    served, pages = run_import(
        source, SlicingPolicy(chains_per_resource=8, min_pages_per_slice=1), splittable=False
    )

    assert len(served) == len(objects) == len(set(served))
    assert pages == 15


def test_no_more_pages_once_the_window_is_exhausted() -> None:
    policy = SlicingPolicy()
    root = plan_import("imp", ["coupons"], planned_at_s=NOW, policy=policy)[0]

    fetched = FetchedPage(
        objects=[{"id": "c", "created": NOW}], next_cursor=None, first_created=NOW, last_created=NOW
    )

    assert (
        next_pages(
            root, fetched, order=ServeOrder.NEWEST_FIRST, policy=policy, splittable=True, running_chains=0
        )
        == []
    )


def test_plan_covers_everything_created_up_to_the_plan_time_once_per_resource() -> None:
    pages = plan_import(
        "imp", ["customers", "invoices", "customers"], planned_at_s=NOW, policy=SlicingPolicy()
    )

    assert [page.resource for page in pages] == ["customers", "invoices"]
    assert all(page.query.window == Window(None, NOW + 1) and page.query.cursor is None for page in pages)


def test_a_growing_resource_starts_with_windows_that_partition_the_time_line_doubling_in_width() -> None:
    policy = SlicingPolicy(first_windows=6)

    pages = plan_import(
        "imp",
        ["products", "customers", "invoices"],
        planned_at_s=NOW,
        policy=policy,
        growing=["customers", "invoices"],
    )

    assert [page.resource for page in pages] == ["products"] + ["customers"] * 6 + ["invoices"] * 6
    assert pages[0].query.window == Window(None, NOW + 1)
    for resource in ("customers", "invoices"):
        windows = [page.query.window for page in pages if page.resource == resource]
        oldest_first = sorted(windows, key=lambda window: window.created_gte or 0)
        # No gap, no overlap: each window starts where the older one ends, from the beginning of
        # time (the oldest is unbounded below) to everything created up to the plan time.
        assert oldest_first[0].created_gte is None
        assert [window.created_gte for window in oldest_first[1:]] == [
            window.created_lt for window in oldest_first[:-1]
        ]
        assert oldest_first[-1].created_lt == NOW + 1
        # The newest is the narrowest, each older one twice as wide (the oldest counted from the
        # policy's earliest plausible creation time), to the second.
        bounds = [policy.earliest_created_s, *(int(window.created_lt or 0) for window in oldest_first)]
        widths = [upper - lower for lower, upper in itertools.pairwise(bounds)]
        newest = (NOW + 1 - policy.earliest_created_s) / (2**6 - 1)
        assert all(abs(width - newest * 2**age) <= 1 for age, width in enumerate(reversed(widths)))
    assert all(page.query.cursor is None and page.parent_id is None for page in pages)
    assert len({page.page_id for page in pages}) == len(pages)


def test_the_first_windows_are_the_same_pages_every_time_they_are_planned() -> None:
    def plan() -> list[PlannedPage]:
        return plan_import(
            "imp",
            ["customers"],
            planned_at_s=NOW,
            policy=SlicingPolicy(first_windows=6),
            growing=["customers"],
        )

    assert plan() == plan()
    assert [page.page_id for page in plan()] == [page_id("imp", page.query) for page in plan()]


def test_one_first_window_plans_a_growing_resource_as_one_window() -> None:
    pages = plan_import(
        "imp", ["customers", "coupons"], planned_at_s=NOW, policy=SlicingPolicy(), growing=["customers"]
    )

    assert [(page.resource, page.query.window) for page in pages] == [
        ("customers", Window(None, NOW + 1)),
        ("coupons", Window(None, NOW + 1)),
    ]


def test_page_ids_are_deterministic_and_distinct() -> None:
    query = PageQuery("customers", Window(10, 20), "cus_1", 100)

    assert page_id("imp", query) == page_id("imp", PageQuery("customers", Window(10, 20), "cus_1", 100))
    assert page_id("imp", query) != page_id("imp", PageQuery("customers", Window(10, 21), "cus_1", 100))
    assert page_id("imp", query) != page_id("other", query)
    assert page_id("imp", query).startswith("imp:customers:")
