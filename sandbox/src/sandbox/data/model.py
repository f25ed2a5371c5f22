"""Processor-neutral billing history: customers, subscriptions and their billing periods.

The Stripe and Chargebee renderers turn the same history into each processor's JSON, so both
fakes tell a consistent story (the same customers churn in the same months).
"""

from __future__ import annotations

import calendar
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

DAY_S = 86_400
HOUR_S = 3_600
TRIAL_DAYS = 14

ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


_ID_TABLE = bytes(ord(ID_ALPHABET[b % len(ID_ALPHABET)]) for b in range(256))


def random_id(rng: random.Random, length: int) -> str:
    """`length` characters of [0-9A-Za-z] (fast: one random byte per character)."""
    return rng.randbytes(length).translate(_ID_TABLE).decode()


def add_months(ts: int, months: int) -> int:
    """Same day-of-month `months` later (clamped to the month's last day), like Stripe's anchors."""
    dt = datetime.fromtimestamp(ts, UTC)
    month_index = dt.month - 1 + months
    year = dt.year + month_index // 12
    month = month_index % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def add_interval(ts: int, interval: str, count: int) -> int:
    if interval == "month":
        return add_months(ts, count)
    if interval == "year":
        return add_months(ts, 12 * count)
    if interval == "week":
        return ts + 7 * DAY_S * count
    if interval == "day":
        return ts + DAY_S * count
    raise ValueError(f"unknown interval {interval!r}")


@dataclass(frozen=True)
class Product:
    key: str
    name: str
    description: str
    addon: bool = False


@dataclass(frozen=True)
class PricePoint:
    """One recurring price of a product in one currency and billing interval."""

    key: str
    product: Product
    amount: int
    currency: str
    interval: str
    interval_count: int
    weight: float = 0.0
    """How often new subscriptions choose it (0: never chosen for a base plan)."""
    per_seat: bool = False
    legacy_plan_id: str | None = None
    """Stripe Plans-API style id (`gold-monthly`) instead of a generated `price_…` id."""
    active: bool = True


@dataclass(frozen=True)
class Coupon:
    code: str
    name: str
    percent_off: float | None
    amount_off: int | None
    currency: str | None
    duration: str  # once | repeating | forever (Stripe words)
    duration_in_months: int | None
    valid: bool
    created_days_ago: int


PRODUCTS: dict[str, Product] = {
    p.key: p
    for p in (
        Product("starter", "Starter", "For individuals getting started"),
        Product("pro", "Pro", "For growing teams"),
        Product("business", "Business", "Per-seat plan for larger teams"),
        Product("team", "Team Weekly", "Short-commitment weekly plan"),
        Product("gold", "Gold (legacy)", "Grandfathered plan from the first price list"),
        Product("seats", "Extra seats", "Additional seats", addon=True),
        Product("support", "Priority support", "Four-hour response time", addon=True),
    )
}


def _pp(  # noqa: PLR0917 - one compact row per price in the table below
    product: str,
    amount: int,
    currency: str,
    interval: str,
    count: int = 1,
    weight: float = 0.0,
    *,
    per_seat: bool = False,
    legacy: str | None = None,
    active: bool = True,
) -> PricePoint:
    key = f"{product}-{currency}-{interval}-{count}" + ("" if active else "-old")
    return PricePoint(
        key, PRODUCTS[product], amount, currency, interval, count, weight, per_seat, legacy, active
    )


PRICE_POINTS: tuple[PricePoint, ...] = (
    _pp("starter", 900, "usd", "month", 1, 16),
    _pp("starter", 9_000, "usd", "year", 1, 5),
    _pp("starter", 1_500, "usd", "month", 1, 0, active=False),
    _pp("pro", 2_900, "usd", "month", 1, 22),
    _pp("pro", 29_000, "usd", "year", 1, 8),
    _pp("pro", 7_900, "usd", "month", 3, 6),
    _pp("business", 9_900, "usd", "month", 1, 8, per_seat=True),
    _pp("business", 99_000, "usd", "year", 1, 3, per_seat=True),
    _pp("team", 500, "usd", "week", 1, 5),
    _pp("gold", 4_900, "usd", "month", 1, 3, legacy="gold-monthly"),
    _pp("seats", 1_000, "usd", "month", 1),
    _pp("support", 4_900, "usd", "month", 1),
    _pp("starter", 900, "eur", "month", 1, 12),
    _pp("pro", 2_700, "eur", "month", 1, 14),
    _pp("pro", 27_000, "eur", "year", 1, 5),
    _pp("business", 8_900, "eur", "month", 1, 4, per_seat=True),
    _pp("seats", 900, "eur", "month", 1),
)

COUPONS: tuple[Coupon, ...] = (
    Coupon("LAUNCH20", "Launch offer: 20% off for 3 months", 20.0, None, None, "repeating", 3, True, 720),
    Coupon("ANNUAL10", "10% off, forever", 10.0, None, None, "forever", None, True, 700),
    Coupon("WELCOME5", "$5 off the first invoice", None, 500, "usd", "once", None, True, 650),
    Coupon("EURO10", "€10 off for 6 months", None, 1_000, "eur", "repeating", 6, True, 600),
    Coupon("VIP25", "VIP: 25% off, forever", 25.0, None, None, "forever", None, True, 500),
    Coupon("SUMMER50", "Summer sale: 50% off once", 50.0, None, None, "once", None, False, 450),
)

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "John",
    "Hedy",
    "Donald",
    "Anita",
    "Guido",
    "Sophie",
    "Niklaus",
    "Lynn",
    "Bjarne",
    "Shafi",
    "Whitfield",
    "Mary",
    "Carl",
    "Ida",
    "Leslie",
    "Jean",
    "Yukihiro",
]
LAST_NAMES = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Lee",
    "Johnson",
    "McCarthy",
    "Lamarr",
    "Knuth",
    "Borg",
    "Rossum",
    "Wilson",
    "Wirth",
    "Conway",
    "Stroustrup",
    "Goldwasser",
    "Diffie",
    "Keller",
    "Hewitt",
    "Rhodes",
    "Lamport",
    "Sammet",
    "Matsumoto",
]
COMPANY_WORDS = [
    "Acorn",
    "Beacon",
    "Cobalt",
    "Delta",
    "Ember",
    "Fjord",
    "Granite",
    "Harbor",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orchard",
    "Pioneer",
    "Quartz",
    "Redwood",
    "Summit",
    "Tundra",
    "Umber",
    "Vertex",
    "Willow",
    "Xenon",
    "Yarrow",
    "Zephyr",
]
COMPANY_SUFFIXES = ("Labs", "Studio", "Systems", "Analytics", "Works", "Co", "Collective", "Partners")
# Country → currency; EUR customers pay from the euro area.
COUNTRIES: tuple[tuple[str, str, float], ...] = (
    ("US", "usd", 60),
    ("CA", "usd", 8),
    ("GB", "usd", 7),
    ("AU", "usd", 5),
    ("DE", "eur", 8),
    ("FR", "eur", 6),
    ("NL", "eur", 4),
    ("ES", "eur", 2),
)

FATES: tuple[tuple[str, float], ...] = (
    ("active", 46),
    ("canceled", 27),
    ("trialing", 6),
    ("scheduled_cancel", 5),
    ("past_due", 5),
    ("paused", 4),
    ("unpaid", 2),
    ("incomplete_expired", 2),
    ("future", 3),
)
# Why a subscription ended: voluntary, failed payments, a dispute, fraud review, terms violation.
CANCEL_CAUSES: tuple[tuple[str, float], ...] = (
    ("voluntary", 66),
    ("payment_failed", 24),
    ("payment_disputed", 4),
    ("fraud", 3),
    ("compliance", 3),
)
STRIPE_FEEDBACK = (
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
)
CANCEL_COMMENTS = (
    "Budget cuts this quarter.",
    "We moved to an in-house tool.",
    "Not using it enough to justify the cost.",
    "Missing an integration with our accounting software.",
    "Company is winding down.",
    "Too hard to onboard the rest of the team.",
)


@dataclass
class Customer:
    index: int
    created: int
    first_name: str
    last_name: str
    company: str
    email: str
    country: str
    currency: str
    deleted: bool = False
    subscriptions: list[Subscription] = field(default_factory=list)


@dataclass
class Period:
    start: int
    end: int


@dataclass
class Subscription:
    index: int
    customer: Customer
    created: int
    start: int
    items: list[tuple[PricePoint, int]]
    fate: str
    trial_start: int | None = None
    trial_end: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_at: int | None = None
    cancel_at_period_end: bool = False
    cause: str | None = None
    feedback: str | None = None
    comment: str | None = None
    coupon: Coupon | None = None
    pause_start: int | None = None
    resume_at: int | None = None
    periods: list[Period] = field(default_factory=list)
    """Billing periods that produced an invoice (oldest first, capped)."""
    current_period: Period | None = None

    @property
    def base(self) -> PricePoint:
        return self.items[0][0]

    @property
    def currency(self) -> str:
        return self.base.currency

    @property
    def billing_anchor(self) -> int:
        return self.trial_end if self.trial_end is not None else self.start


@dataclass
class History:
    now: int
    customers: list[Customer]
    subscriptions: list[Subscription]


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices], k=1)[0]


def _burst_instants(rng: random.Random, now: int, history_s: int, customers: int) -> list[int]:
    count = max(3, customers // 40)
    return sorted(now - history_s + rng.randrange(0, history_s - 30 * DAY_S) for _ in range(count))


def build_history(
    rng: random.Random,
    *,
    now: int,
    customers: int,
    history_days: int,
    max_invoices_per_subscription: int,
    shared_created_ratio: float,
) -> History:
    """Customers signing up over `history_days`, growth skewed to recent months."""
    history_s = history_days * DAY_S
    bursts = _burst_instants(rng, now, history_s, customers) if shared_created_ratio > 0 else []
    people: list[Customer] = []
    subs: list[Subscription] = []
    for index in range(customers):
        if bursts and rng.random() < shared_created_ratio:
            created = rng.choice(bursts)  # a bulk migration: many objects share one instant
        else:
            created = now - history_s + int(history_s * math.sqrt(rng.random())) - HOUR_S
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}"
        domain = company.lower().replace(" ", "-") + ".example"
        country = _weighted(rng, tuple((c, w) for c, _, w in COUNTRIES))
        currency = next(cur for c, cur, _ in COUNTRIES if c == country)
        email = f"{first.lower()}.{last.lower()}{index}@{domain}"
        customer = Customer(index, created, first, last, company, email, country, currency)
        people.append(customer)
        roll = rng.random()
        count = 0 if roll < 0.05 else (2 if roll > 0.85 else 1)
        for _ in range(count):
            sub = _subscription(
                rng,
                customer,
                index=len(subs),
                now=now,
                max_invoices=max_invoices_per_subscription,
                bursts=bursts,
            )
            customer.subscriptions.append(sub)
            subs.append(sub)
    # A few Chargebee customers were deleted along with their subscriptions (include_deleted).
    for customer in people:
        if rng.random() < 0.02 and customer.subscriptions:
            customer.deleted = True
    return History(now, people, subs)


def _choose_items(rng: random.Random, currency: str) -> list[tuple[PricePoint, int]]:
    bases = [p for p in PRICE_POINTS if p.currency == currency and p.weight > 0]
    base = rng.choices(bases, weights=[p.weight for p in bases], k=1)[0]
    if base.per_seat:
        quantity = rng.randint(2, 25)
    elif rng.random() < 0.9:
        quantity = 1
    else:
        quantity = rng.randint(2, 5)
    items = [(base, quantity)]
    addons = [
        p
        for p in PRICE_POINTS
        if p.product.addon
        and p.currency == currency
        and p.interval == base.interval
        and p.interval_count == base.interval_count
    ]
    if addons and rng.random() < 0.15:
        addon = rng.choice(addons)
        items.append((addon, 1 if addon.product.key == "support" else rng.randint(1, 10)))
    return items


def _choose_coupon(rng: random.Random, currency: str) -> Coupon | None:
    if rng.random() >= 0.22:
        return None
    usable = [c for c in COUPONS if c.currency in (None, currency)]
    return rng.choice(usable)


def _subscription(
    rng: random.Random,
    customer: Customer,
    *,
    index: int,
    now: int,
    max_invoices: int,
    bursts: list[int],
) -> Subscription:
    fate = _weighted(rng, FATES)
    if customer.created in bursts:
        created = customer.created  # migrated together with its customer
    else:
        created = min(now - HOUR_S, customer.created + rng.randrange(0, 3 * DAY_S))
    if now - created < 20 * DAY_S and fate not in ("trialing", "future", "active"):
        fate = "active"
    if fate == "trialing":
        created = max(customer.created, now - rng.randrange(HOUR_S, (TRIAL_DAYS - 1) * DAY_S))
    if fate == "future":
        created = max(customer.created, now - rng.randrange(HOUR_S, 10 * DAY_S))
    sub = Subscription(
        index=index,
        customer=customer,
        created=created,
        start=created,
        items=_choose_items(rng, customer.currency),
        fate=fate,
        coupon=_choose_coupon(rng, customer.currency),
    )
    has_trial = fate == "trialing" or (fate not in ("future", "incomplete_expired") and rng.random() < 0.3)
    if (has_trial and created + TRIAL_DAYS * DAY_S < now - DAY_S) or fate == "trialing":
        sub.trial_start = created
        sub.trial_end = created + TRIAL_DAYS * DAY_S
    if fate == "future":
        sub.start = now + rng.randrange(3, 30) * DAY_S
    _settle_lifecycle(rng, sub, now)
    _bill(sub, now, max_invoices)
    return sub


def _periods_until(sub: Subscription, until: int) -> list[Period]:
    """Billing periods starting at the anchor whose start is before `until`."""
    base = sub.base
    periods: list[Period] = []
    start = sub.billing_anchor
    step = 0
    while start < until:
        step += 1
        end = add_interval(sub.billing_anchor, base.interval, base.interval_count * step)
        periods.append(Period(start, end))
        start = end
    return periods


def _settle_lifecycle(rng: random.Random, sub: Subscription, now: int) -> None:
    fate = sub.fate
    anchor = sub.billing_anchor
    if fate == "canceled":
        sub.cause = _weighted(rng, CANCEL_CAUSES)
        sub.canceled_at = rng.randrange(anchor + DAY_S, now - DAY_S)
        at_period_end = sub.cause == "voluntary" and rng.random() < 0.4
        if at_period_end:
            period = _periods_until(sub, sub.canceled_at + 1)[-1]
            if period.end < now:
                sub.ended_at = period.end
                sub.cancel_at = period.end
                sub.cancel_at_period_end = True
            else:
                sub.fate = fate = "scheduled_cancel"
        else:
            sub.ended_at = sub.canceled_at
    if fate == "scheduled_cancel":
        current = _periods_until(sub, now + 1)[-1]
        sub.cause = "voluntary"
        sub.canceled_at = rng.randrange(min(max(current.start, now - 20 * DAY_S), now - 1), now)
        sub.cancel_at = current.end
        sub.cancel_at_period_end = True
        sub.ended_at = None
    if sub.cause == "voluntary":
        sub.feedback = rng.choice(STRIPE_FEEDBACK) if rng.random() < 0.7 else None
        sub.comment = rng.choice(CANCEL_COMMENTS) if rng.random() < 0.35 else None
    if fate == "incomplete_expired":
        sub.trial_start = sub.trial_end = None
        sub.ended_at = sub.created + 23 * HOUR_S
        sub.cause = "payment_failed"
    if fate == "paused":
        periods = _periods_until(sub, now)
        if len(periods) >= 2:
            sub.pause_start = periods[rng.randrange(max(1, len(periods) - 3), len(periods))].start
        else:
            sub.pause_start = now - DAY_S
        sub.resume_at = sub.pause_start + rng.choice((30, 60, 90)) * DAY_S if rng.random() < 0.6 else None
        if sub.resume_at is not None and sub.resume_at <= now:
            sub.resume_at = now + rng.randrange(1, 30) * DAY_S


def _bill(sub: Subscription, now: int, max_invoices: int) -> None:
    if sub.fate == "future":
        sub.current_period = Period(
            sub.start, add_interval(sub.start, sub.base.interval, sub.base.interval_count)
        )
        return
    if sub.fate == "incomplete_expired":
        sub.periods = [Period(sub.start, add_interval(sub.start, sub.base.interval, sub.base.interval_count))]
        sub.current_period = sub.periods[0]
        return
    stop = now
    if sub.ended_at is not None:
        stop = sub.ended_at
    if sub.pause_start is not None:
        stop = sub.pause_start
    if sub.fate == "trialing":
        sub.periods = []
        sub.current_period = Period(sub.trial_start or sub.start, sub.trial_end or sub.start)
        return
    all_periods = _periods_until(sub, stop)
    if not all_periods:  # ended before its first paid period started
        all_periods = [Period(sub.billing_anchor, sub.billing_anchor)]
    sub.current_period = all_periods[-1]
    sub.periods = all_periods[-max_invoices:] if max_invoices > 0 else []


def discount_applies(sub: Subscription, period_start: int) -> bool:
    """Whether the subscription's coupon reduces the invoice of the period starting then."""
    coupon = sub.coupon
    if coupon is None:
        return False
    if coupon.duration == "forever":
        return True
    if coupon.duration == "once":
        return period_start == sub.billing_anchor
    months = coupon.duration_in_months or 0
    return period_start < add_months(sub.billing_anchor, months)


def discount_amount(sub: Subscription, subtotal: int) -> int:
    coupon = sub.coupon
    if coupon is None:
        return 0
    if coupon.percent_off is not None:
        return round(subtotal * coupon.percent_off / 100)
    return min(coupon.amount_off or 0, subtotal)


def invoice_outcomes(sub: Subscription) -> list[str]:
    """Outcome of each billed period, oldest first: paid, open, uncollectible or void."""
    outcomes = ["paid"] * len(sub.periods)
    if not outcomes:
        return outcomes
    if sub.fate == "past_due":
        outcomes[-1] = "open"
    elif sub.fate == "unpaid":
        outcomes[-1] = "open"
        if len(outcomes) > 1:
            outcomes[-2] = "open"
    elif sub.fate == "incomplete_expired":
        outcomes[-1] = "void"
    elif sub.fate == "canceled" and sub.cause == "payment_failed":
        outcomes[-1] = "uncollectible"
    return outcomes
