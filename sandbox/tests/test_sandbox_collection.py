"""Sorted views: correct bounds and cursors, and pages that cost O(limit + log n)."""

from __future__ import annotations

import time

from sandbox.collection import Collection


def make(n: int, *, same_created_every: int = 1) -> Collection:
    objects = [{"id": f"obj_{i:07d}", "created": 1_000_000 + i // same_created_every} for i in range(n)]
    return Collection("things", objects, sort_fields=("created",))


def test_bounds_and_cursors_with_ties() -> None:
    things = make(100, same_created_every=10)  # ten objects share each timestamp
    view = things.view("created")
    lo, hi = view.bounds(gte=1_000_003, lt=1_000_005)
    assert [o["created"] for o in view.items[lo:hi]] == [1_000_003] * 10 + [1_000_004] * 10
    lo, hi = view.bounds(gt=1_000_003, lte=1_000_005)
    assert {o["created"] for o in view.items[lo:hi]} == {1_000_004, 1_000_005}

    seen: list[str] = []
    hi = len(view)
    while True:
        page = view.descending(0, hi, 7)
        seen += [o["id"] for o in page.items]
        if not page.has_more:
            break
        key = things.key_of(page.items[-1]["id"], "created")
        assert key is not None
        hi = view.position_before(key)
    assert seen == [f"obj_{i:07d}" for i in reversed(range(100))]


def test_removed_objects_leave_lists_but_keep_their_cursor() -> None:
    things = make(50)
    things.remove(["obj_0000020"])
    view = things.view("created")
    assert len(view) == 49
    key = things.key_of("obj_0000020", "created")
    assert key is not None
    page = view.descending(0, view.position_before(key), 3)
    assert [o["id"] for o in page.items] == ["obj_0000019", "obj_0000018", "obj_0000017"]
    things.reset()
    assert len(things.view("created")) == 50


def test_page_cost_does_not_grow_with_the_collection() -> None:
    def page_time(n: int) -> float:
        things = make(n)
        view = things.view("created")
        key = things.key_of(f"obj_{n // 2:07d}", "created")
        assert key is not None
        best = float("inf")
        for _ in range(3):  # the best of three runs, so that a busy machine does not decide
            started = time.perf_counter()
            for _ in range(200):
                lo, hi = view.bounds(gte=1_000_000 + n // 4)
                view.descending(lo, min(hi, view.position_before(key)), 100)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = page_time(1_000), page_time(100_000)
    assert large < small * 5  # O(limit + log n): a 100x larger collection costs about the same
