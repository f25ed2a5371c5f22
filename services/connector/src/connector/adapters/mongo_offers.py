"""The ``offers`` collection: one document per offer, unique on ``(account_id, idempotency_key)``.

The unique index is what makes a key claim one offer under concurrent requests: the second insert
fails and reads the first. Applied offers are listed newest first by ``(applied_at, _id)``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

from contracts.runtime.mongo import durable
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from connector.domain.offers import AppliedOffer, OfferIntent, OfferPlan, OfferStatus
from connector.domain.refusals import ConnectionRefused, RefusalCode

OFFERS_COLLECTION: Final = "offers"
ONE_OFFER_PER_KEY_INDEX: Final = "one_offer_per_idempotency_key"

Document = dict[str, Any]


async def ensure_offer_indexes(db: AsyncDatabase[Document]) -> None:
    offers = db[OFFERS_COLLECTION]
    await offers.create_index(
        [("account_id", ASCENDING), ("idempotency_key", ASCENDING)], name=ONE_OFFER_PER_KEY_INDEX, unique=True
    )
    await offers.create_index(
        [
            ("account_id", ASCENDING),
            ("status", ASCENDING),
            ("result.applied_at", DESCENDING),
            ("_id", DESCENDING),
        ]
    )


class MongoOfferStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        # Majority writes: an offer the processor applied is never forgotten on a primary's failover.
        self._offers = durable(db[OFFERS_COLLECTION])

    async def claim(self, intent: OfferIntent) -> OfferIntent:
        document = _document(intent)
        try:
            await self._offers.insert_one(document)
        except DuplicateKeyError:
            stored = await self._offers.find_one(
                {"account_id": intent.account_id, "idempotency_key": intent.idempotency_key}
            )
            if stored is None:  # pragma: no cover - only if it was deleted in between
                raise
            return _intent(stored)
        return intent

    async def plan(self, offer_id: str, plan: OfferPlan) -> OfferPlan:
        stored = await self._offers.find_one_and_update(
            {"_id": offer_id, "plan": None},
            {"$set": {"plan": asdict(plan)}},
            return_document=ReturnDocument.AFTER,
        )
        if stored is None:
            stored = await self._offers.find_one({"_id": offer_id})
        if stored is None or stored.get("plan") is None:  # pragma: no cover - never deleted
            raise LookupError(f"offer {offer_id} has no plan")
        return OfferPlan(**stored["plan"])

    async def applied(self, offer_id: str, result: AppliedOffer) -> AppliedOffer:
        await self._offers.update_one(
            {"_id": offer_id, "status": OfferStatus.PENDING.value},
            {"$set": {"status": OfferStatus.APPLIED.value, "result": asdict(result)}},
        )
        stored = await self._offers.find_one({"_id": offer_id})
        if stored is None or stored.get("result") is None:  # pragma: no cover - never deleted
            raise LookupError(f"offer {offer_id} is not applied")
        return AppliedOffer(**stored["result"])

    async def refused(self, offer_id: str, code: str, message: str) -> None:
        await self._offers.update_one(
            {"_id": offer_id, "status": OfferStatus.PENDING.value},
            {"$set": {"status": OfferStatus.REFUSED.value, "refusal_code": code, "refusal_message": message}},
        )

    async def page(
        self, account_id: str, *, subscription_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[AppliedOffer], str | None]:
        query: Document = {"account_id": account_id, "status": OfferStatus.APPLIED.value}
        if subscription_id is not None:
            query["subscription_id"] = subscription_id
        if cursor is not None:
            applied_at, offer_id = _decode(cursor)
            query["$or"] = [
                {"result.applied_at": {"$lt": applied_at}},
                {"result.applied_at": applied_at, "_id": {"$lt": offer_id}},
            ]
        found = await self._offers.find(
            query, sort=[("result.applied_at", DESCENDING), ("_id", DESCENDING)], limit=limit + 1
        ).to_list()
        offers = [AppliedOffer(**document["result"]) for document in found[:limit]]
        more = len(found) > limit
        return offers, _encode(offers[-1]) if more and offers else None

    async def erase_account(self, account_id: str) -> int:
        # One indexed delete (the unique index leads with account_id); repeating it deletes nothing.
        result = await self._offers.delete_many({"account_id": account_id})
        return result.deleted_count


def _document(intent: OfferIntent) -> Document:
    return {
        "_id": intent.offer_id,
        "account_id": intent.account_id,
        "idempotency_key": intent.idempotency_key,
        "body_digest": intent.body_digest,
        "kind": intent.kind,
        "subscription_id": intent.subscription_id,
        "created_at": intent.created_at,
        "status": intent.status.value,
        "plan": None if intent.plan is None else asdict(intent.plan),
        "result": None if intent.result is None else asdict(intent.result),
        "refusal_code": intent.refusal_code,
        "refusal_message": intent.refusal_message,
    }


def _intent(document: Document) -> OfferIntent:
    return OfferIntent(
        offer_id=str(document["_id"]),
        account_id=document["account_id"],
        idempotency_key=document["idempotency_key"],
        body_digest=document["body_digest"],
        kind=document["kind"],
        subscription_id=document["subscription_id"],
        created_at=document["created_at"],
        status=OfferStatus(document["status"]),
        plan=None if document.get("plan") is None else OfferPlan(**document["plan"]),
        result=None if document.get("result") is None else AppliedOffer(**document["result"]),
        refusal_code=document.get("refusal_code"),
        refusal_message=document.get("refusal_message"),
    )


def _encode(offer: AppliedOffer) -> str:
    raw = f"{offer.applied_at.isoformat()}|{offer.offer_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        applied_at, offer_id = raw.split("|", 1)
        return datetime.fromisoformat(applied_at), offer_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ConnectionRefused(
            RefusalCode.INVALID_REQUEST, "The cursor is not one this API gave."
        ) from error
