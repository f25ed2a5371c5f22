"""Use case: apply a churn-prevention offer at the processor, at most once per Idempotency-Key.

What can fail and what then happens:
- bad input (body, key): refused before anything is stored or sent;
- no connected processor with verified write access: ``feature_unavailable``, nothing stored;
- the same key with another body: ``idempotency_conflict``; with the same body after it was applied
  or refused: the stored answer, nothing sent;
- the processor refuses (no such subscription or coupon, ended subscription): the refusal is kept
  under the key and answered again on a replay;
- the processor is slow, down or throttling, or this process dies anywhere after the claim: the
  offer stays pending; a replay carries on from what was stored (``mrr_before`` and the new end
  were decided before the first write) and sends the very same processor idempotency keys, so the
  processor answers from its own record instead of writing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from contracts.connections import ConnectionStatus
from contracts.events import OfferApplied
from contracts.runtime.logging import get_logger
from contracts.topics import OFFERS

from connector.domain.connection import Connection
from connector.domain.offers import (
    AppliedOffer,
    OfferIntent,
    OfferPlan,
    OfferProcessor,
    OfferRequest,
    OfferStatus,
    OfferStore,
    OfferSubscription,
    created_coupon_id,
    feature_unavailable,
    idempotency_key,
    processor_key,
    refused,
)
from connector.domain.ports import Outgoing
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.dependencies import Dependencies
from connector.service.outbox import deliver

#: Refusals that are the processor's final word on this request: kept and answered again.
FINAL_REFUSALS: Final = frozenset(
    {
        RefusalCode.SUBSCRIPTION_NOT_FOUND,
        RefusalCode.COUPON_NOT_FOUND,
        RefusalCode.OFFER_NOT_APPLICABLE,
        RefusalCode.INVALID_REQUEST,
    }
)
_OFFER_NAMESPACE: Final = uuid.UUID("2f0e5c8e-9a51-4d7f-8d0b-0b7a3f1e6c42")

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OfferSubmission:
    account_id: str
    idempotency_key: str | None
    request: OfferRequest


def _store(deps: Dependencies) -> OfferStore:
    if deps.offers is None:
        raise feature_unavailable("offers are not served here")
    return deps.offers


async def writable_connection(deps: Dependencies, account_id: str) -> Connection:
    """The account's connected processor, if it may be written to; ``feature_unavailable`` else."""
    connection = await deps.connections.active(account_id)
    if (
        deps.offer_processors is None
        or connection is None
        or connection.status is not ConnectionStatus.CONNECTED
    ):
        raise feature_unavailable("no connected processor")
    if not connection.write_access or connection.credentials_ciphertext is None:
        raise feature_unavailable(connection.write_access_reason or "write access not verified")
    return connection


def processor_of(deps: Dependencies, connection: Connection) -> OfferProcessor:
    """The processor of a :func:`writable_connection`, acting with its stored credentials."""
    if deps.offer_processors is None or connection.credentials_ciphertext is None:
        raise feature_unavailable("no connected processor")
    credentials = deps.cipher.decrypt(connection.credentials_ciphertext)
    return deps.offer_processors.for_connection(connection, credentials)


async def apply_offer(deps: Dependencies, submission: OfferSubmission) -> AppliedOffer:
    store = _store(deps)
    connection = await writable_connection(deps, submission.account_id)
    key = idempotency_key(submission.idempotency_key)
    request = submission.request
    now = deps.clock()
    intent = await store.claim(
        OfferIntent(
            offer_id=f"offer_{uuid.uuid4().hex}",
            account_id=submission.account_id,
            idempotency_key=key,
            body_digest=request.digest(),
            kind=request.kind,
            subscription_id=request.subscription_id,
            created_at=now,
        )
    )
    if intent.body_digest != request.digest():
        raise refused(
            RefusalCode.IDEMPOTENCY_CONFLICT,
            "This Idempotency-Key was already used with another request; use a new key for a new offer.",
        )
    if intent.status is OfferStatus.APPLIED and intent.result is not None:
        return intent.result
    if intent.status is OfferStatus.REFUSED:
        code = RefusalCode(intent.refusal_code or RefusalCode.OFFER_NOT_APPLICABLE.value)
        raise ConnectionRefused(code, intent.refusal_message or "The processor refused this offer.")

    processor = processor_of(deps, connection)
    try:
        plan, after = await _carry_out(store, processor, intent, request, key)
    except ConnectionRefused as refusal:
        if refusal.code in FINAL_REFUSALS:
            await store.refused(intent.offer_id, refusal.code.value, refusal.message)
        _log.info(
            "offer.refused",
            account_id=submission.account_id,
            offer_id=intent.offer_id,
            code=refusal.code.value,
            final=refusal.code in FINAL_REFUSALS,
        )
        raise
    applied_at = deps.clock()
    result = AppliedOffer(
        offer_id=intent.offer_id,
        kind=request.kind,
        subscription_id=request.subscription_id,
        customer_id=plan.customer_id,
        applied_at=applied_at,
        currency=plan.currency,
        mrr_before=plan.mrr_before,
        mrr_after=after.mrr(processor.processor, submission.account_id),
    )
    event = OfferApplied(
        event_id=uuid.uuid5(_OFFER_NAMESPACE, intent.offer_id),
        account_id=submission.account_id,
        occurred_at=applied_at,
        offer_id=result.offer_id,
        processor=processor.processor,
        subscription_id=result.subscription_id,
        customer_id=result.customer_id,
        kind=result.kind,
        currency=result.currency,
        mrr_before=result.mrr_before,
        mrr_after=result.mrr_after,
        applied_at=applied_at,
    )
    # The event is queued before the offer is marked applied: a crash in between leaves the offer
    # pending, and its replay queues the same event (same event_id) again, which is harmless.
    outgoing = [Outgoing(OFFERS, event)]
    await deps.connections.add_events(connection.connection_id, outgoing)
    stored = await store.applied(intent.offer_id, result)
    await deliver(deps, connection.connection_id, outgoing)
    _log.info(
        "offer.applied",
        account_id=submission.account_id,
        offer_id=stored.offer_id,
        kind=stored.kind,
        processor=processor.processor.value,
        mrr_before=stored.mrr_before,
        mrr_after=stored.mrr_after,
    )
    return stored


async def _carry_out(
    store: OfferStore, processor: OfferProcessor, intent: OfferIntent, request: OfferRequest, key: str
) -> tuple[OfferPlan, OfferSubscription]:
    account_id = intent.account_id
    plan = intent.plan
    if plan is None:
        # Refusals in the SPEC's order: subscription, coupon, then whether the offer applies.
        subscription = await processor.subscription(request.subscription_id)
        if request.coupon_id is not None:
            await processor.check_coupon(request.coupon_id)
        if subscription.ended:
            raise refused(
                RefusalCode.OFFER_NOT_APPLICABLE,
                f"The subscription has ended ({subscription.status}); offers apply to live subscriptions.",
            )
        new_end = subscription.extended_end(request.days) if request.days is not None else None
        plan = await store.plan(
            intent.offer_id,
            OfferPlan(
                customer_id=subscription.customer_id,
                currency=subscription.currency,
                mrr_before=subscription.mrr(processor.processor, account_id),
                new_end=new_end,
            ),
        )
    if request.kind == "trial_extension":
        assert plan.new_end is not None
        after = await processor.move_end(
            request.subscription_id, plan.new_end, idempotency_key=processor_key(account_id, key, "extend")
        )
        return plan, after
    coupon_id = request.coupon_id
    if coupon_id is None:
        assert request.coupon is not None
        coupon_id = await processor.create_coupon(
            request.coupon,
            coupon_id=created_coupon_id(account_id, key),
            idempotency_key=processor_key(account_id, key, "coupon"),
        )
    after = await processor.apply_coupon(
        request.subscription_id, coupon_id, idempotency_key=processor_key(account_id, key, "apply")
    )
    return plan, after


async def list_offers(
    deps: Dependencies, account_id: str, *, subscription_id: str | None, limit: int, cursor: str | None
) -> tuple[list[AppliedOffer], str | None]:
    return await _store(deps).page(account_id, subscription_id=subscription_id, limit=limit, cursor=cursor)
