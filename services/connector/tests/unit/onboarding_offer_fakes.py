"""In-memory offers for the onboarding page's unit tests: the ``offers`` store and a processor that
keeps its subscriptions and coupons, answers a repeated idempotency key from its record, and counts
its writes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from connector.domain.offers import (
    AppliedOffer,
    CouponTerms,
    OfferIntent,
    OfferPlan,
    OfferStatus,
    OfferSubscription,
)
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector_fakes import World
from contracts.connections import ProcessorCredentials, StoredConnection
from contracts.events import Processor
from contracts.records import Discount, SubscriptionItem

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _discount(terms: CouponTerms, coupon_id: str) -> Discount | None:
    """How a created coupon lowers MRR: a one-time coupon does not."""
    if terms.duration == "once":
        return None
    percent = None if terms.percent_off is None else float(terms.percent_off)
    return Discount(coupon_id=coupon_id, percent_off=percent, amount_off=terms.amount_off)


class InMemoryOfferStore:
    """The ``offers`` collection, unique on ``(account_id, idempotency_key)``."""

    def __init__(self) -> None:
        self.intents: dict[str, OfferIntent] = {}

    async def claim(self, intent: OfferIntent) -> OfferIntent:
        for known in self.intents.values():
            if (known.account_id, known.idempotency_key) == (intent.account_id, intent.idempotency_key):
                return known
        self.intents[intent.offer_id] = intent
        return intent

    async def plan(self, offer_id: str, plan: OfferPlan) -> OfferPlan:
        known = self.intents[offer_id]
        if known.plan is None:
            known = self.intents[offer_id] = dataclasses.replace(known, plan=plan)
        assert known.plan is not None
        return known.plan

    async def applied(self, offer_id: str, result: AppliedOffer) -> AppliedOffer:
        known = self.intents[offer_id]
        if known.result is None:
            known = self.intents[offer_id] = dataclasses.replace(
                known, status=OfferStatus.APPLIED, result=result
            )
        assert known.result is not None
        return known.result

    async def refused(self, offer_id: str, code: str, message: str) -> None:
        self.intents[offer_id] = dataclasses.replace(
            self.intents[offer_id], status=OfferStatus.REFUSED, refusal_code=code, refusal_message=message
        )

    async def page(
        self, account_id: str, *, subscription_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[AppliedOffer], str | None]:
        applied = [i.result for i in self.intents.values() if i.account_id == account_id and i.result]
        return sorted(applied, key=lambda offer: offer.applied_at, reverse=True)[:limit], None

    async def erase_account(self, account_id: str) -> int:
        mine = [offer_id for offer_id, i in self.intents.items() if i.account_id == account_id]
        for offer_id in mine:
            del self.intents[offer_id]
        return len(mine)


def subscription(subscription_id: str, status: str, amount: int) -> OfferSubscription:
    return OfferSubscription(
        subscription_id=subscription_id,
        customer_id=f"cus_{subscription_id}",
        status=status,
        currency="USD",
        items=[SubscriptionItem(price_id="price_pro", unit_amount=amount)],
        discounts=[],
        trial_end=T0 + timedelta(days=7) if status == "in_trial" else None,
        current_period_end=T0 + timedelta(days=20),
    )


class FakeOfferProcessor:
    """One Chargebee site's subscriptions and coupons, written in place."""

    processor = Processor.CHARGEBEE

    def __init__(self) -> None:
        self.subscriptions: dict[str, OfferSubscription] = {
            s.subscription_id: s
            for s in (
                subscription("sub_active", "active", 5000),
                subscription("sub_trial", "in_trial", 2900),
                subscription("sub_over", "cancelled", 9900),
            )
        }
        self.coupons: dict[str, Discount | None] = {"SAVE10": Discount(coupon_id="SAVE10", percent_off=10)}
        #: Each write the processor carried out (a replayed idempotency key is no write).
        self.writes: list[str] = []
        self._answers: dict[str, OfferSubscription] = {}
        #: What the next call of any kind answers instead, when set.
        self.refusal: ConnectionRefused | None = None
        self.listing_refusal: ConnectionRefused | None = None

    def _check(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    async def subscription(self, subscription_id: str) -> OfferSubscription:
        self._check()
        found = self.subscriptions.get(subscription_id)
        if found is None:
            raise ConnectionRefused(RefusalCode.SUBSCRIPTION_NOT_FOUND, "Chargebee has no such subscription.")
        return found

    async def check_coupon(self, coupon_id: str) -> None:
        self._check()
        if coupon_id not in self.coupons:
            raise ConnectionRefused(RefusalCode.COUPON_NOT_FOUND, "Chargebee has no such coupon.")

    async def live_subscriptions(self, limit: int) -> list[OfferSubscription]:
        if self.listing_refusal is not None:
            raise self.listing_refusal
        return [s for s in self.subscriptions.values() if not s.ended][:limit]

    async def create_coupon(self, terms: CouponTerms, *, coupon_id: str, idempotency_key: str) -> str:
        self._check()
        if coupon_id not in self.coupons:
            self.coupons[coupon_id] = _discount(terms, coupon_id)
            self.writes.append(f"create {coupon_id}")
        return coupon_id

    async def apply_coupon(
        self, subscription_id: str, coupon_id: str, *, idempotency_key: str
    ) -> OfferSubscription:
        self._check()
        if idempotency_key in self._answers:
            return self._answers[idempotency_key]
        found = await self.subscription(subscription_id)
        discount = self.coupons[coupon_id]
        updated = dataclasses.replace(found, discounts=[*found.discounts, *([discount] if discount else [])])
        return self._wrote(idempotency_key, updated, f"coupon {coupon_id} on {subscription_id}")

    async def move_end(
        self, subscription_id: str, new_end: datetime, *, idempotency_key: str
    ) -> OfferSubscription:
        self._check()
        if idempotency_key in self._answers:
            return self._answers[idempotency_key]
        found = await self.subscription(subscription_id)
        updated = (
            dataclasses.replace(found, trial_end=new_end)
            if found.trial_end is not None
            else dataclasses.replace(found, current_period_end=new_end)
        )
        return self._wrote(idempotency_key, updated, f"end of {subscription_id} to {new_end.date()}")

    def _wrote(self, key: str, updated: OfferSubscription, what: str) -> OfferSubscription:
        self.subscriptions[updated.subscription_id] = self._answers[key] = updated
        self.writes.append(what)
        return updated


class FakeOfferProcessors:
    def __init__(self, processor: FakeOfferProcessor) -> None:
        self.processor = processor

    def for_connection(
        self, connection: StoredConnection, credentials: ProcessorCredentials
    ) -> FakeOfferProcessor:
        return self.processor


def with_offers(world: World) -> FakeOfferProcessor:
    """Offers served in ``world``: an in-memory store and the fake processor it returns."""
    processor = FakeOfferProcessor()
    world.deps = dataclasses.replace(
        world.deps, offers=InMemoryOfferStore(), offer_processors=FakeOfferProcessors(processor)
    )
    return processor
