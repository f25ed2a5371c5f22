"""Monthly customer and gross MRR churn per currency (SPEC "Metrics"; formulas in docs/metrics.md).

For month M starting at instant t and the next month starting at t':

- ``customers_at_start``: customers with at least one subscription in the currency paying at t;
- ``churned_customers``: those of them with no subscription in the currency paying at t';
- ``mrr_at_start``: the MRR of the subscriptions in the currency paying at t;
- ``churned_mrr``: the MRR of those of them that ended by t' (ended during M);
- the rates divide the churned figure by its start figure, ``None`` when that is 0.

A subscription pays over one contiguous stretch of time (``lifecycle.paying_from`` until its end),
so each contributes one range of month boundaries; the whole computation is a sort and a sweep.
``ChurnSweep`` takes the subscriptions batch by batch, so a caller never holds an account's
subscriptions at once: what it keeps grows with the customers, not with the subscriptions.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from contracts.records import CouponRecord, SubscriptionRecord
from pydantic import BaseModel, ConfigDict

from importer.domain.lifecycle import ended_at, paying_from
from importer.domain.mrr import subscription_mrr

_MONTH: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
#: The subscription fields the computation reads (lifecycle and MRR), all a store needs to return.
CHURN_FIELDS: Final = (
    "account_id",
    "processor",
    "object_id",
    "customer_id",
    "status",
    "currency",
    "items",
    "discounts",
    "started_at",
    "trial_end",
    "canceled_at",
    "ended_at",
)


class ChurnRow(BaseModel):
    """One row of ``GET …/metrics/churn``: one month and currency; amounts in minor units."""

    model_config = ConfigDict(frozen=True)

    month: str
    currency: str
    customers_at_start: int
    churned_customers: int
    customer_churn_rate: float | None
    mrr_at_start: int
    churned_mrr: int
    gross_mrr_churn_rate: float | None


def parse_month(month: str) -> tuple[int, int]:
    """``"YYYY-MM"`` as ``(year, month)``; raises ``ValueError`` for anything else."""
    match = _MONTH.match(month)
    if match is None:
        raise ValueError(f"a month is YYYY-MM, not {month!r}")
    return int(match.group(1)), int(match.group(2))


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def month_starts(from_month: str, to_month: str) -> list[datetime]:
    """The first instant of every month from ``from_month`` to ``to_month`` and of the month after."""
    year, month = parse_month(from_month)
    last = parse_month(to_month)
    if (year, month) > last:
        raise ValueError("from_month is after to_month")
    starts: list[datetime] = []
    while (year, month) <= last:
        starts.append(month_start(year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    starts.append(month_start(year, month))
    return starts


@dataclass(slots=True)
class _Totals:
    customers_at_start: list[int]
    churned_customers: list[int]
    mrr_at_start: list[int]
    churned_mrr: list[int]


def monthly_churn(
    subscriptions: Iterable[SubscriptionRecord],
    coupons: Mapping[str, CouponRecord],
    *,
    from_month: str,
    to_month: str,
) -> list[ChurnRow]:
    """One row per month from ``from_month`` to ``to_month`` (inclusive) and currency seen.

    Rows are ordered by month, then currency. Raises ``ValueError`` for a malformed or reversed range.
    """
    sweep = ChurnSweep(coupons, from_month=from_month, to_month=to_month)
    sweep.add(subscriptions)
    return sweep.rows()


class ChurnSweep:
    """``monthly_churn`` fed in batches: ``add`` each batch of subscriptions, then ``rows``.

    Raises ``ValueError`` for a malformed or reversed range when built.
    """

    def __init__(self, coupons: Mapping[str, CouponRecord], *, from_month: str, to_month: str) -> None:
        self._coupons = coupons
        self._boundaries = month_starts(from_month, to_month)
        self._months = len(self._boundaries) - 1
        self._currencies: set[str] = set()
        # Per (customer, currency): the boundary index ranges at which one of its subscriptions pays.
        self._customer_ranges: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        self._totals: dict[str, _Totals] = {}

    def add(self, subscriptions: Iterable[SubscriptionRecord]) -> None:
        months = self._months
        for subscription in subscriptions:
            self._currencies.add(subscription.currency)
            paying_range = _paying_boundaries(subscription, self._boundaries)
            if paying_range is None:
                continue
            first, last = paying_range
            currency_totals = self._totals.setdefault(subscription.currency, _new_totals(months))
            mrr = subscription_mrr(subscription, self._coupons)
            for index in range(first, min(last, months - 1) + 1):
                currency_totals.mrr_at_start[index] += mrr
            if last < months:
                # Paying at boundary ``last``, ended by boundary ``last + 1``: churned in month ``last``.
                currency_totals.churned_mrr[last] += mrr
            self._customer_ranges[(subscription.customer_id, subscription.currency)].append(paying_range)

    def rows(self) -> list[ChurnRow]:
        months = self._months
        totals = self._totals
        for (_customer, currency), ranges in self._customer_ranges.items():
            currency_totals = totals[currency]
            for first, last in _merged(ranges):
                for index in range(first, min(last, months - 1) + 1):
                    currency_totals.customers_at_start[index] += 1
                if last < months:
                    currency_totals.churned_customers[last] += 1
        self._customer_ranges.clear()

        rows: list[ChurnRow] = []
        for index in range(months):
            label = self._boundaries[index].strftime("%Y-%m")
            for currency in sorted(self._currencies):
                t = totals.get(currency) or _new_totals(months)
                rows.append(
                    ChurnRow(
                        month=label,
                        currency=currency,
                        customers_at_start=t.customers_at_start[index],
                        churned_customers=t.churned_customers[index],
                        customer_churn_rate=_rate(t.churned_customers[index], t.customers_at_start[index]),
                        mrr_at_start=t.mrr_at_start[index],
                        churned_mrr=t.churned_mrr[index],
                        gross_mrr_churn_rate=_rate(t.churned_mrr[index], t.mrr_at_start[index]),
                    )
                )
        return rows


def _paying_boundaries(
    subscription: SubscriptionRecord, boundaries: list[datetime]
) -> tuple[int, int] | None:
    """The first and last index of the boundaries at which the subscription pays, if any."""
    start = paying_from(subscription)
    if start is None:
        return None
    end = ended_at(subscription)
    first = bisect_left(boundaries, start)
    # Paying at t requires t < end: the last boundary strictly before the end.
    last = len(boundaries) - 1 if end is None else bisect_left(boundaries, end) - 1
    if first > last:
        return None
    return first, last


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or adjacent ranges joined: a customer paying at every boundary never churned."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _new_totals(months: int) -> _Totals:
    return _Totals([0] * months, [0] * months, [0] * months, [0] * months)


def _rate(churned: int, at_start: int) -> float | None:
    return None if at_start == 0 else churned / at_start


#: One month's changes in one currency: paying MRR and paying customers starting at this month's
#: start (a difference: what starts minus what stopped), and MRR and customers churned in it.
MonthChange = tuple[int, int, int, int]


def month_number(moment: datetime) -> int:
    """The month ``moment`` falls in, counted from year 0 (``year * 12 + month - 1``)."""
    return moment.year * 12 + moment.month - 1


def _month_label(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


@dataclass(frozen=True, slots=True)
class SubscriptionShare:
    """What one subscription adds to an account's churn: its customer and currency, the months at
    whose start it pays (first, last; last ``None`` while it has not ended; ``None`` if never),
    and its MRR."""

    customer_id: str
    currency: str
    paying: tuple[int, int | None] | None
    mrr: int


def share_of(subscription: SubscriptionRecord, coupons: Mapping[str, CouponRecord]) -> SubscriptionShare:
    paying = _paying_months(subscription)
    mrr = 0 if paying is None else subscription_mrr(subscription, coupons)
    return SubscriptionShare(subscription.customer_id, subscription.currency, paying, mrr)


@dataclass(frozen=True, slots=True)
class ChurnSummary:
    """An account's churn over every month at once, in a few numbers per month and currency.

    For each currency, the months at which something changes: at the start of month m the paying
    MRR and customers are the sums of the differences of the months up to m; a month's churned MRR
    and customers are its own. ``rows`` gives exactly ``monthly_churn`` over the subscriptions the
    summary was built from, for any range, in O(months) (see ``ChurnSummaryBuilder``). Summaries
    add and subtract (``plus``): the summary of a set of customers' subscriptions replaced by
    another's is ``whole.plus(new).plus(old, sign=-1)``.
    """

    #: Subscriptions per currency, paying or not: the rows name each currency with at least one.
    currency_counts: Mapping[str, int]
    #: Per currency, ``(month number, MonthChange)`` sorted by month.
    changes: Mapping[str, tuple[tuple[int, MonthChange], ...]]

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(sorted(currency for currency, count in self.currency_counts.items() if count > 0))

    def plus(self, other: ChurnSummary, *, sign: int = 1) -> ChurnSummary:
        counts = dict(self.currency_counts)
        for currency, count in other.currency_counts.items():
            counts[currency] = counts.get(currency, 0) + sign * count
        merged: dict[str, dict[int, list[int]]] = {}
        for summary, factor in ((self, 1), (other, sign)):
            for currency, months in summary.changes.items():
                column = merged.setdefault(currency, {})
                for month, change in months:
                    total = column.setdefault(month, [0, 0, 0, 0])
                    for index in range(4):
                        total[index] += factor * change[index]
        return ChurnSummary(counts, _sorted_changes(merged))

    def rows(self, *, from_month: str, to_month: str) -> list[ChurnRow]:
        """Raises ``ValueError`` for a malformed or reversed range."""
        starts = month_starts(from_month, to_month)
        first, last = month_number(starts[0]), month_number(starts[-2])
        currencies = self.currencies
        columns: dict[str, list[tuple[int, int, int, int]]] = {}
        for currency in currencies:
            columns[currency] = _figures(self.changes.get(currency, ()), first, last)
        rows: list[ChurnRow] = []
        for offset, number in enumerate(range(first, last + 1)):
            label = _month_label(number)
            for currency in currencies:
                mrr, customers, churned_mrr, churned_customers = columns[currency][offset]
                rows.append(
                    ChurnRow(
                        month=label,
                        currency=currency,
                        customers_at_start=customers,
                        churned_customers=churned_customers,
                        customer_churn_rate=_rate(churned_customers, customers),
                        mrr_at_start=mrr,
                        churned_mrr=churned_mrr,
                        gross_mrr_churn_rate=_rate(churned_mrr, mrr),
                    )
                )
        return rows


def _sorted_changes(
    changes: Mapping[str, Mapping[int, list[int]]],
) -> dict[str, tuple[tuple[int, MonthChange], ...]]:
    return {
        currency: tuple(
            (month, (change[0], change[1], change[2], change[3]))
            for month, change in sorted(months.items())
            if any(change)
        )
        for currency, months in sorted(changes.items())
    }


def _figures(
    changes: Iterable[tuple[int, MonthChange]], first: int, last: int
) -> list[tuple[int, int, int, int]]:
    """``(mrr_at_start, customers_at_start, churned_mrr, churned_customers)`` of each month from
    ``first`` to ``last``."""
    figures = [(0, 0, 0, 0)] * (last - first + 1)
    mrr = customers = 0
    pending = iter(changes)
    upcoming = next(pending, None)
    for offset, number in enumerate(range(first, last + 1)):
        churned_mrr = churned_customers = 0
        while upcoming is not None and upcoming[0] <= number:
            month, (mrr_change, customer_change, month_churned_mrr, month_churned_customers) = upcoming
            mrr += mrr_change
            customers += customer_change
            if month == number:
                churned_mrr, churned_customers = month_churned_mrr, month_churned_customers
            upcoming = next(pending, None)
        figures[offset] = (mrr, customers, churned_mrr, churned_customers)
    return figures


class ChurnSummaryBuilder:
    """Builds a ``ChurnSummary`` from an account's subscriptions, batch by batch (``add``), then
    ``summary``; ``shares`` are what each subscription added, by customer (what a summary of part
    of the account is built from again, ``add_shares``). What it keeps grows with the subscriptions
    (a few numbers each).

    A subscription pays at the starts of the months from the first one at or after it started
    paying (``lifecycle.paying_from``) to the last one before it ended: its MRR is added at the
    first, removed after the last, and churned in the last when it ended. A customer's paying
    stretches in a currency are the union of its subscriptions': each stretch counts one customer
    at each of its month starts and churns one in its last month when it ends.
    """

    def __init__(self, coupons: Mapping[str, CouponRecord]) -> None:
        self._coupons = coupons
        #: Per customer: (subscription id, share) of each of its subscriptions.
        self.shares: dict[str, list[tuple[str, SubscriptionShare]]] = defaultdict(list)

    def add(self, subscriptions: Iterable[SubscriptionRecord]) -> None:
        for subscription in subscriptions:
            share = share_of(subscription, self._coupons)
            self.shares[share.customer_id].append((subscription.object_id, share))

    def add_shares(self, shares: Iterable[tuple[str, SubscriptionShare]]) -> None:
        for object_id, share in shares:
            self.shares[share.customer_id].append((object_id, share))

    def summary(self) -> ChurnSummary:
        counts: dict[str, int] = {}
        changes: dict[str, dict[int, list[int]]] = {}

        def change(currency: str, month: int) -> list[int]:
            months = changes.setdefault(currency, {})
            found = months.get(month)
            if found is None:
                found = months[month] = [0, 0, 0, 0]
            return found

        for customer_shares in self.shares.values():
            ranges: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
            for _object_id, share in customer_shares:
                counts[share.currency] = counts.get(share.currency, 0) + 1
                if share.paying is None:
                    continue
                first, last = share.paying
                change(share.currency, first)[0] += share.mrr
                if last is not None:
                    change(share.currency, last + 1)[0] -= share.mrr
                    change(share.currency, last)[2] += share.mrr
                ranges[share.currency].append(share.paying)
            for currency, paying in ranges.items():
                for first, last in _merged_open(paying):
                    change(currency, first)[1] += 1
                    if last is not None:
                        change(currency, last + 1)[1] -= 1
                        change(currency, last)[3] += 1
        return ChurnSummary(currency_counts=counts, changes=_sorted_changes(changes))


def _paying_months(subscription: SubscriptionRecord) -> tuple[int, int | None] | None:
    """The first and last month (numbers) at whose start the subscription pays; the last is
    ``None`` when it has not ended."""
    start = paying_from(subscription)
    if start is None:
        return None
    first = month_number(start)
    if month_start(*_year_month(first)) < start:
        first += 1  # paying from within the month: from the next month's start
    end = ended_at(subscription)
    if end is None:
        return first, None
    last = month_number(end)
    if month_start(*_year_month(last)) >= end:
        last -= 1  # ended at a month's first instant: not paying at it
    if first > last:
        return None
    return first, last


def _year_month(number: int) -> tuple[int, int]:
    return number // 12, number % 12 + 1


def _merged_open(ranges: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """``_merged`` of ranges whose end may be open (``None``: still paying)."""
    merged: list[tuple[int, int | None]] = []
    for first, last in sorted(ranges, key=lambda item: item[0]):
        if merged:
            previous_first, previous_last = merged[-1]
            if previous_last is None:
                continue
            if first <= previous_last + 1:
                merged[-1] = (previous_first, None if last is None else max(previous_last, last))
                continue
        merged.append((first, last))
    return merged
