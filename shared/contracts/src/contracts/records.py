"""Canonical billing records: one per processor object, the same shape for Stripe and Chargebee.

They are stored in MongoDB (unique on ``account_id, processor, object_id``) and published on the
``billing.*.v1`` topics keyed ``account_id:processor:object_id``. Amounts are integers in minor units
with an upper-case ISO 4217 currency; times are aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts import topics
from contracts.events import Processor

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Interval = Literal["day", "week", "month", "year"]


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: int
    currency: Currency


class CanonicalRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    #: The ``billing.*`` topic and the MongoDB collection this kind of record lives in.
    topic: ClassVar[str]
    collection: ClassVar[str]

    account_id: str
    processor: Processor
    object_id: str
    created_at: AwareDatetime | None = None

    @field_validator("created_at", check_fields=False)
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def key(self) -> str:
        return topics.billing_record_key(self.account_id, self.processor.value, self.object_id)


class CustomerRecord(CanonicalRecord):
    topic: ClassVar[str] = topics.BILLING_CUSTOMERS
    collection: ClassVar[str] = "customers"

    email: str | None = None
    name: str | None = None
    currency: Currency | None = None
    deleted: bool = False


class PriceRecord(CanonicalRecord):
    """A recurring or one-off price: a Stripe price or legacy plan, a Chargebee plan or item price."""

    topic: ClassVar[str] = topics.BILLING_PRICES
    collection: ClassVar[str] = "prices"

    product_id: str | None = None
    name: str | None = None
    currency: Currency | None = None
    unit_amount: int | None = None
    interval: Interval | None = None
    interval_count: int = 1
    recurring: bool = True
    active: bool = True


class CouponRecord(CanonicalRecord):
    topic: ClassVar[str] = topics.BILLING_COUPONS
    collection: ClassVar[str] = "coupons"

    name: str | None = None
    percent_off: float | None = None
    amount_off: Money | None = None
    duration: str | None = None
    duration_in_months: int | None = None
    valid: bool = True


class SubscriptionItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    price_id: str | None = None
    product_id: str | None = None
    name: str | None = None
    unit_amount: int = 0
    quantity: int = 1
    interval: Interval = "month"
    interval_count: Annotated[int, Field(ge=1)] = 1


class Discount(BaseModel):
    """A discount applied to a whole subscription: a percentage or an amount per billing period."""

    model_config = ConfigDict(frozen=True)

    coupon_id: str | None = None
    percent_off: float | None = None
    amount_off: int | None = None


class SubscriptionRecord(CanonicalRecord):
    topic: ClassVar[str] = topics.BILLING_SUBSCRIPTIONS
    collection: ClassVar[str] = "subscriptions"

    customer_id: str
    #: The processor's own status word (Stripe ``canceled``, Chargebee ``cancelled``, ...).
    status: str
    currency: Currency
    items: list[SubscriptionItem] = Field(default_factory=list)
    discounts: list[Discount] = Field(default_factory=list)
    started_at: AwareDatetime | None = None
    trial_end: AwareDatetime | None = None
    current_period_end: AwareDatetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    cancel_reason: str | None = None
    cancel_reason_code: str | None = None
    cancel_feedback: str | None = None
    cancel_comment: str | None = None
    #: Monthly recurring revenue as defined in the SPEC's "Metrics", in ``currency``.
    mrr: int = 0
    plan: str | None = None


class InvoiceRecord(CanonicalRecord):
    topic: ClassVar[str] = topics.BILLING_INVOICES
    collection: ClassVar[str] = "invoices"

    customer_id: str | None = None
    subscription_id: str | None = None
    status: str | None = None
    currency: Currency
    total: int = 0
    amount_paid: int = 0
    amount_due: int = 0
    paid_at: AwareDatetime | None = None
    #: Payment attempts made for it (Stripe ``attempt_count``; Chargebee 1 + its ``dunning_attempts``):
    #: more than 1 on a paid invoice means it was paid after a failed attempt (recovered revenue).
    attempt_count: int = 0


class CancellationRecord(CanonicalRecord):
    """A past cancellation: a subscription that was cancelled, with what it was worth."""

    topic: ClassVar[str] = topics.BILLING_CANCELLATIONS
    collection: ClassVar[str] = "cancellations"

    customer_id: str
    subscription_id: str
    canceled_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    reason: str | None = None
    reason_code: str | None = None
    feedback: str | None = None
    comment: str | None = None
    mrr_lost: Money
    plan: str | None = None


RECORD_TYPES: tuple[type[CanonicalRecord], ...] = (
    CustomerRecord,
    PriceRecord,
    CouponRecord,
    SubscriptionRecord,
    InvoiceRecord,
    CancellationRecord,
)
