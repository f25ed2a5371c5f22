"""How an import shares its chains among resources, and which windows are cut to add chains."""

from __future__ import annotations

import pytest
from importer.domain.planning import (
    PlannedPage,
    ServeOrder,
    SlicingPolicy,
    chain_share,
    least_chain_share,
    least_piece,
    next_pages,
    page_id,
    worth_cutting,
)
from importer.domain.source import FetchedPage, PageQuery, Window

NOW = 1_750_000_000
POLICY = SlicingPolicy(chains_per_resource=20, import_chains=48, min_pages_per_slice=10)
SIZES: dict[str, float | None] = {"invoices": 800.0, "customers": 125.0, "subscriptions": 140.0}


def test_the_largest_resource_gets_every_chain_one_resource_may_run() -> None:
    assert chain_share("invoices", SIZES, POLICY) == 20


def test_the_others_get_chains_in_proportion_to_the_largest_rounded_up() -> None:
    # 20 x 125 / 800 = 3.125 and 20 x 140 / 800 = 3.5: both end with the invoices on 4 chains.
    assert chain_share("customers", SIZES, POLICY) == 4
    assert chain_share("subscriptions", SIZES, POLICY) == 4


def test_shares_beyond_the_import_chains_are_scaled_down_alike() -> None:
    policy = SlicingPolicy(chains_per_resource=20, import_chains=24)
    # The shares 20 + 4 + 4 = 28 exceed 24: each is scaled by 24/28, rounded down.
    assert chain_share("invoices", SIZES, policy) == 17  # 20 x 24/28 = 17.1
    assert chain_share("customers", SIZES, policy) == 3  # 4 x 24/28 = 3.4


def test_a_resource_whose_first_page_is_pending_is_left_out() -> None:
    sizes: dict[str, float | None] = {"invoices": 300.0, "customers": None}
    assert chain_share("invoices", sizes, POLICY) == 20


def test_a_resource_of_unknown_size_gets_the_least_share() -> None:
    sizes: dict[str, float | None] = {"invoices": 300.0, "customers": None}
    assert chain_share("customers", sizes, POLICY) == least_chain_share(POLICY) == 5


def test_a_resource_with_nothing_left_still_runs_the_chain_it_has() -> None:
    assert chain_share("coupons", {"invoices": 800.0, "coupons": 0.0}, POLICY) == 1


def test_only_windows_at_least_as_large_as_the_median_chain_are_cut() -> None:
    assert worth_cutting(30.0, [10.0, 20.0, 40.0])  # median of 10, 20, 30, 40 is 25
    assert not worth_cutting(15.0, [10.0, 20.0, 40.0])  # median of 10, 15, 20, 40 is 17.5


def test_one_far_off_guess_does_not_stop_every_cut() -> None:
    # A fresh window spanning the years before the account existed is guessed huge; the mean of
    # the chains (1,016) would let no real window be cut, the median (20) lets the larger ones.
    assert worth_cutting(30.0, [10.0, 20.0, 5_000.0])


def test_pieces_hold_min_pages_per_slice_while_the_other_chains_hold_more() -> None:
    assert least_piece([40.0, 25.0, 60.0], POLICY) == 10.0
    assert least_piece([], POLICY) == 10.0


def test_pieces_shrink_to_what_the_other_chains_hold_when_they_are_about_to_end() -> None:
    assert least_piece([3.0, 6.0, 4.0], POLICY) == 4.0
    assert least_piece([0.5, 1.0, 0.2], POLICY) == 2.0  # never below two pages


def fetched_newest(count: int, first: int, last: int) -> FetchedPage:
    """A full Stripe page of ``count`` objects from ``first`` down to ``last`` (newest first)."""
    step = (first - last) / max(1, count - 1)
    objects = [{"id": f"obj_{index}", "created": round(first - index * step)} for index in range(count)]
    return FetchedPage(
        objects=objects, next_cursor=str(objects[-1]["id"]), first_created=first, last_created=last
    )


def children_after_a_full_page(
    gte: int, *, chain_limit: int | None = None, min_pages: float | None = None
) -> list[PlannedPage]:
    """The pages that follow the first page of an invoices window ``[gte, NOW + 1)`` when it served
    100 objects over the last 1,000 s (so 0.1 page a second is left in the rest)."""
    query = PageQuery("invoices", Window(gte, NOW + 1), None, 100)
    return next_pages(
        PlannedPage(page_id("imp", query), "imp", query),
        fetched_newest(100, NOW, NOW - 999),
        order=ServeOrder.NEWEST_FIRST,
        policy=POLICY,
        splittable=True,
        running_chains=0,
        chain_limit=chain_limit,
        min_pages=min_pages,
    )


def test_fresh_windows_carry_their_guessed_size_and_the_pieces_add_up_to_the_rest() -> None:
    # A window reaching back 100,000 s: 99 pages estimated to be left after this one.
    children = children_after_a_full_page(NOW - 100_000)

    assert len(children) == POLICY.max_fanout
    assert all(child.estimated_pages is not None for child in children)
    assert sum(child.estimated_pages or 0.0 for child in children) == pytest.approx(99.0, rel=0.02)


def test_the_pieces_of_a_window_reaching_back_to_the_earliest_time_are_unsized_until_served() -> None:
    # A resource's first page: its window has no lower bound, so where the account began is unknown
    # and the newest page's density over the years back to 2010 says nothing of each piece.
    query = PageQuery("invoices", Window(None, NOW + 1), None, 100)
    children = next_pages(
        PlannedPage(page_id("imp", query), "imp", query),
        fetched_newest(100, NOW, NOW - 999),
        order=ServeOrder.NEWEST_FIRST,
        policy=POLICY,
        splittable=True,
        running_chains=0,
    )

    continued, *fresh = children
    assert len(children) == POLICY.max_fanout
    assert continued.query.cursor is not None
    assert continued.estimated_pages is not None  # the piece next to the page: its density holds
    assert fresh
    assert all(child.query.cursor is None and child.estimated_pages is None for child in fresh)


@pytest.mark.parametrize(("min_pages", "pieces"), [(None, 1), (2.0, 3)])
def test_a_smaller_least_piece_lets_a_small_rest_be_shared_out(min_pages: float | None, pieces: int) -> None:
    # About 6 pages left: too few for two pieces of 10, enough for three of 2.
    children = children_after_a_full_page(NOW - 7_000, chain_limit=3, min_pages=min_pages)

    assert len(children) == pieces
