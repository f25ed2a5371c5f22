"""Churn-prevention offers (SPEC "Offers"): what may be asked, the intent kept before the processor
is called, the processor idempotency keys derived from ours, and MRR before and after.

An offer is applied at most once per ``(account, Idempotency-Key)``: the intent (key, body hash) is
stored before anything is sent to the processor, and every processor write carries a key derived
from ours, so a replay after a timeout, a 5xx or a crash repeats the same processor request, which
the processor answers from its own idempotency store instead of writing twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal, Protocol

from contracts.connections import ProcessorCredentials, StoredConnection
from contracts.events import Processor
from contracts.mrr import subscription_mrr
from contracts.records import Discount, SubscriptionItem, SubscriptionRecord

from connector.domain.refusals import ConnectionRefused, RefusalCode

OfferKind = Literal["coupon", "trial_extension"]
CouponDuration = Literal["once", "repeating", "forever"]

IDEMPOTENCY_KEY_MAX_CHARS: Final = 255
MAX_TRIAL_EXTENSION_DAYS: Final = 365
MAX_COUPON_MONTHS: Final = 120
#: What the connector's offer list answers per page, at most.
MAX_OFFERS_PAGE: Final = 100
#: How many of an account's live subscriptions the onboarding page's offers demo lists.
DEMO_SUBSCRIPTIONS: Final = 5

#: Statuses of a subscription that has ended: nothing can be offered any more.
ENDED_STATUSES: Final = frozenset({"canceled", "cancelled", "incomplete_expired"})
#: Statuses whose trial can be extended (its end moves) ...
TRIAL_STATUSES: Final = frozenset({"trialing", "in_trial"})
#: ... and statuses that can get free days (the next billing date moves).
PAYING_STATUSES: Final = frozenset({"active", "past_due", "non_renewing"})

#: ISO 4217 currency codes in use (a code outside this list is refused before any request).
ISO_4217: Final = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)


def refused(code: RefusalCode, message: str) -> ConnectionRefused:
    return ConnectionRefused(code, message)


def feature_unavailable(reason: str) -> ConnectionRefused:
    return refused(
        RefusalCode.FEATURE_UNAVAILABLE,
        f"Offers are not available for this account ({reason}): connect a processor with write access.",
    )


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """A coupon to create at the processor; refuses what no processor accepts."""

    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_in_months: int | None = None

    def __post_init__(self) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise _invalid("A coupon has either percent_off or amount_off (with currency).")
        if self.percent_off is not None and not Decimal(0) < self.percent_off <= Decimal(100):
            raise _invalid("percent_off must be more than 0 and at most 100.")
        if self.amount_off is not None:
            if self.amount_off <= 0:
                raise _invalid("amount_off must be a positive amount in minor units.")
            if self.currency is None:
                raise _invalid("amount_off needs a currency.")
            if self.currency not in ISO_4217:
                raise _invalid(f"{self.currency!r} is not an ISO 4217 currency code.")
        elif self.currency is not None:
            raise _invalid("currency goes with amount_off only.")
        if self.duration == "repeating":
            if self.duration_in_months is None or not 1 <= self.duration_in_months <= MAX_COUPON_MONTHS:
                raise _invalid(f"A repeating coupon needs duration_in_months from 1 to {MAX_COUPON_MONTHS}.")
        elif self.duration_in_months is not None:
            raise _invalid("duration_in_months goes with a repeating coupon only.")


@dataclass(frozen=True, slots=True)
class OfferRequest:
    """One of the three bodies of ``POST …/offers``."""

    kind: OfferKind
    subscription_id: str
    coupon_id: str | None = None
    coupon: CouponTerms | None = None
    days: int | None = None

    def __post_init__(self) -> None:
        if not self.subscription_id:
            raise _invalid("subscription_id is required.")
        if self.kind == "coupon" and (self.coupon_id is None) == (self.coupon is None):
            raise _invalid("A coupon offer names coupon_id or describes a coupon, not both.")
        if self.kind == "trial_extension" and (
            self.days is None or not 1 <= self.days <= MAX_TRIAL_EXTENSION_DAYS
        ):
            raise _invalid(f"days must be from 1 to {MAX_TRIAL_EXTENSION_DAYS}.")

    def digest(self) -> str:
        """The body's fingerprint: the same request under the same key must have the same one."""
        coupon = None
        if self.coupon is not None:
            coupon = {
                "duration": self.coupon.duration,
                "percent_off": None
                if self.coupon.percent_off is None
                else str(self.coupon.percent_off.normalize()),
                "amount_off": self.coupon.amount_off,
                "currency": self.coupon.currency,
                "duration_in_months": self.coupon.duration_in_months,
            }
        canonical = {
            "kind": self.kind,
            "subscription_id": self.subscription_id,
            "coupon_id": self.coupon_id,
            "coupon": coupon,
            "days": self.days,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def idempotency_key(raw: str | None) -> str:
    if raw is None or not 1 <= len(raw) <= IDEMPOTENCY_KEY_MAX_CHARS:
        raise refused(
            RefusalCode.IDEMPOTENCY_KEY_REQUIRED,
            f"Send an Idempotency-Key header of 1 to {IDEMPOTENCY_KEY_MAX_CHARS} characters.",
        )
    return raw


def processor_key(account_id: str, key: str, step: str) -> str:
    """The processor idempotency key of one write of an offer: derived from ours, scoped to the
    account, so that a replay sends the very same key and nothing else ever does."""
    digest = hashlib.sha256(f"{account_id}\x00{key}".encode()).hexdigest()[:40]
    return f"offer-{digest}-{step}"


def created_coupon_id(account_id: str, key: str) -> str:
    """The id of a coupon an offer creates: the same on every replay (a second creation is refused
    by the processor as a duplicate instead of making a second coupon)."""
    return "offer-" + hashlib.sha256(f"{account_id}\x00{key}\x00coupon".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class OfferSubscription:
    """The processor's subscription as an offer needs it, in the canonical vocabulary."""

    subscription_id: str
    customer_id: str
    status: str
    currency: str
    items: Sequence[SubscriptionItem]
    discounts: Sequence[Discount]
    trial_end: datetime | None = None
    current_period_end: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED_STATUSES

    def mrr(self, processor: Processor, account_id: str) -> int:
        """MRR by the SPEC's formula, whatever the status (in trial: what it will pay)."""
        record = SubscriptionRecord(
            account_id=account_id,
            processor=processor,
            object_id=self.subscription_id,
            customer_id=self.customer_id,
            status=self.status,
            currency=self.currency,
            items=list(self.items),
            discounts=list(self.discounts),
        )
        return subscription_mrr(record, {})

    def extended_end(self, days: int) -> datetime:
        """Where the trial end (trialing) or the next billing date (paying) moves; refuses others."""
        if self.status in TRIAL_STATUSES and self.trial_end is not None:
            return self.trial_end + timedelta(days=days)
        if self.status in PAYING_STATUSES and self.current_period_end is not None:
            return self.current_period_end + timedelta(days=days)
        raise refused(
            RefusalCode.OFFER_NOT_APPLICABLE,
            f"A subscription that is {self.status} cannot get a trial extension or free days.",
        )


class OfferStatus(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class OfferPlan:
    """What was decided before the first processor write, so that a replay decides the same."""

    customer_id: str
    currency: str
    mrr_before: int
    new_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class AppliedOffer:
    offer_id: str
    kind: OfferKind
    subscription_id: str
    customer_id: str
    applied_at: datetime
    currency: str
    mrr_before: int
    mrr_after: int
    status: Literal["applied"] = "applied"


@dataclass(frozen=True, slots=True)
class OfferIntent:
    """The stored offer: claimed under its idempotency key before the processor is asked."""

    offer_id: str
    account_id: str
    idempotency_key: str
    body_digest: str
    kind: OfferKind
    subscription_id: str
    created_at: datetime
    status: OfferStatus = OfferStatus.PENDING
    plan: OfferPlan | None = None
    result: AppliedOffer | None = None
    refusal_code: str | None = None
    refusal_message: str | None = None


class OfferStore(Protocol):
    """The ``offers`` collection, unique on ``(account_id, idempotency_key)``."""

    async def claim(self, intent: OfferIntent) -> OfferIntent:
        """Store ``intent``, or return the one already stored under its key."""
        ...

    async def plan(self, offer_id: str, plan: OfferPlan) -> OfferPlan:
        """Record the plan unless one is recorded; the recorded one."""
        ...

    async def applied(self, offer_id: str, result: AppliedOffer) -> AppliedOffer:
        """Mark applied unless it is; the stored result."""
        ...

    async def refused(self, offer_id: str, code: str, message: str) -> None: ...

    async def page(
        self, account_id: str, *, subscription_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[AppliedOffer], str | None]:
        """Applied offers newest first, and the cursor of the next page."""
        ...

    async def erase_account(self, account_id: str) -> int:
        """Delete every offer of the account (the processor's subscription and customer ids, MRR
        and amounts they hold); how many were deleted."""
        ...


class OfferProcessor(Protocol):
    """Reads and writes of one connected account at its processor (official SDKs, no retries)."""

    processor: Processor

    async def subscription(self, subscription_id: str) -> OfferSubscription:
        """Raises ``subscription_not_found``."""
        ...

    async def check_coupon(self, coupon_id: str) -> None:
        """Raises ``coupon_not_found`` unless the coupon exists and can be applied."""
        ...

    async def live_subscriptions(self, limit: int) -> list[OfferSubscription]:
        """The first ``limit`` subscriptions that have not ended, as the processor lists them (one
        read, no paging): what the onboarding page's offers demo offers to choose from."""
        ...

    async def create_coupon(self, terms: CouponTerms, *, coupon_id: str, idempotency_key: str) -> str: ...

    async def apply_coupon(
        self, subscription_id: str, coupon_id: str, *, idempotency_key: str
    ) -> OfferSubscription: ...

    async def move_end(
        self, subscription_id: str, new_end: datetime, *, idempotency_key: str
    ) -> OfferSubscription:
        """Move a trial's end, or give free days until ``new_end`` (nothing charged for them)."""
        ...


class OfferProcessors(Protocol):
    def for_connection(
        self, connection: StoredConnection, credentials: ProcessorCredentials
    ) -> OfferProcessor:
        """The processor of a connected account, acting with its stored credentials."""
        ...


def _invalid(message: str) -> ConnectionRefused:
    return refused(RefusalCode.INVALID_REQUEST, message)
