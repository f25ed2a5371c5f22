"""Churn summaries: ``churn_summaries`` (one document per account and processor), the shares each
summary was built from (``churn_shares``) and the changes of its inputs since (``churn_changes``).

``churn_summaries``, ``_id`` = ``<account_id>:<processor>``:

- ``inputs_version``: moved on (``$inc``) by every sync write or removal of subscriptions or coupons
  of the account, *after* the records are written; each move leaves one ``churn_changes`` entry
  (``_id`` = ``<account_id>:<processor>:<version, 12 digits>``: the subscriptions' object ids, and
  whether a coupon changed), written after the move;
- ``summary`` (``domain.churn.ChurnSummary``: subscriptions per currency and, per currency, the
  months at which something changes), with ``built_at_version`` (the inputs' version read *before*
  the subscriptions were), ``built_from`` (when that reading started) and ``build_id``;
- ``changed_since`` while a change is not in a summary yet (the first such change's time; index
  ``(changed_since)`` for the background rebuild), and ``rebuild_lease`` while one process
  rebuilds it.

``churn_shares``, ``_id`` = ``<account_id>:<processor>:<build_id>:<c|s><bucket>``: what each
subscription added to the build's summary (``domain.churn.SubscriptionShare``), in buckets by
customer (``c``: each customer's shares) and by subscription (``s``: each subscription's
customer), ``buckets`` of each (about 100 subscriptions a bucket), so a few changed subscriptions
need a few small documents. They are written before the summary that names them; other builds'
are removed once it is kept.

A summary is current when its ``built_at_version`` is the document's ``inputs_version``: a write
bumps the version after it stores the record and a build reads the version before the records, so
a build that could have missed a write is never taken as current.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from importer.domain.churn import ChurnSummary, MonthChange, SubscriptionShare
from importer.domain.ports import ChurnInputsChange, StoredChurn

Document = dict[str, Any]
CHURN_SUMMARIES: Final = "churn_summaries"
CHURN_SHARES: Final = "churn_shares"
CHURN_CHANGES: Final = "churn_changes"
#: The collections holding an account's churn data, every ``_id`` starting ``<account_id>:``.
CHURN_COLLECTIONS: Final = (CHURN_SUMMARIES, CHURN_SHARES, CHURN_CHANGES)
#: Subscriptions a share bucket holds, about; at most this many buckets of each kind.
SUBSCRIPTIONS_PER_BUCKET: Final = 100
MAX_BUCKETS: Final = 1024
#: Share documents sent per insert command (a few kilobytes each).
SHARE_DOCUMENTS_PER_INSERT: Final = 50


def summary_key(account_id: str, processor: str) -> str:
    return f"{account_id}:{processor}"


def _change_key(account_id: str, processor: str, version: int) -> str:
    return f"{account_id}:{processor}:{version:012d}"


def _bucket(value: str, buckets: int) -> int:
    return zlib.crc32(value.encode()) % buckets


async def ensure_churn_indexes(database: AsyncDatabase[Document]) -> None:
    await database[CHURN_SUMMARIES].create_index([("changed_since", ASCENDING)], sparse=True)


async def churn_inputs_changed(
    database: AsyncDatabase[Document],
    account_id: str,
    processor: str,
    now: datetime,
    *,
    subscription_ids: Sequence[str] = (),
    coupons: bool = False,
    known: bool = True,
) -> None:
    """Move the inputs' version of the account on and note what changed: its summary is no longer
    current. ``known=False``: what changed is not said (the summary is rebuilt)."""
    document = await database[CHURN_SUMMARIES].find_one_and_update(
        {"_id": summary_key(account_id, processor)},
        {
            "$inc": {"inputs_version": 1},
            "$min": {"changed_since": now},
            "$setOnInsert": {"account_id": account_id, "processor": processor},
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
        projection={"inputs_version": 1},
    )
    if not known or document is None:
        return  # no entry: the version has a gap, so no summary is corrected across it
    version = int(document["inputs_version"])
    await database[CHURN_CHANGES].insert_one(
        {
            "_id": _change_key(account_id, processor, version),
            "subscription_ids": list(subscription_ids),
            "coupons": coupons,
        }
    )


class MongoChurnSummaries:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._database = database
        self._summaries = database[CHURN_SUMMARIES]
        self._shares = database[CHURN_SHARES]
        self._changes = database[CHURN_CHANGES]

    async def read(self, account_id: str, processor: str) -> StoredChurn | None:
        document = await self._summaries.find_one({"_id": summary_key(account_id, processor)})
        if document is None:
            return None
        summary = document.get("summary")
        if summary is not None and "counts" not in summary:
            summary = None  # an earlier layout: rebuilt
        return StoredChurn(
            inputs_version=int(document.get("inputs_version", 0)),
            summary=None if summary is None else _summary_of(summary),
            built_at_version=document.get("built_at_version"),
            built_from=document.get("built_from"),
            build_id=document.get("build_id"),
            buckets=document.get("buckets"),
        )

    async def inputs_version(self, account_id: str, processor: str) -> int:
        key = summary_key(account_id, processor)
        try:
            document = await self._summaries.find_one_and_update(
                {"_id": key},
                {"$setOnInsert": {"account_id": account_id, "processor": processor, "inputs_version": 0}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # created at the same time by another writer
            document = await self._summaries.find_one({"_id": key})
        return 0 if document is None else int(document.get("inputs_version", 0))

    async def save(
        self,
        account_id: str,
        processor: str,
        summary: ChurnSummary,
        shares: Mapping[str, Sequence[tuple[str, SubscriptionShare]]],
        *,
        version: int,
        built_from: datetime,
    ) -> bool:
        key = summary_key(account_id, processor)
        build_id = uuid.uuid4().hex
        buckets = await self._write_shares(key, build_id, shares)
        # Never over a summary built from a later reading; never creates the document (an erasure
        # removed it: this reading may hold records it erased).
        result = await self._summaries.update_one(
            {"_id": key, "built_from": {"$not": {"$gt": built_from}}},
            {
                "$set": {
                    "summary": _document_of(summary),
                    "built_at_version": version,
                    "built_from": built_from,
                    "build_id": build_id,
                    "buckets": buckets,
                }
            },
        )
        kept = result.matched_count > 0
        await self._shares.delete_many(
            {
                "_id": {"$gte": f"{key}:", "$lt": f"{key};"},
                "build_id": {"$ne": build_id} if kept else build_id,
            }
        )
        if not kept:
            return False
        await self._changes.delete_many(
            {"_id": {"$gte": f"{key}:", "$lte": _change_key(account_id, processor, version)}}
        )
        await self._summaries.update_one(
            {"_id": key, "inputs_version": version}, {"$unset": {"changed_since": "", "rebuild_lease": ""}}
        )
        return True

    async def _write_shares(
        self, key: str, build_id: str, shares: Mapping[str, Sequence[tuple[str, SubscriptionShare]]]
    ) -> int:
        # Laid out in a worker thread and sent a few documents a command: the event loop only
        # encodes a few hundred kilobytes at a time.
        buckets, documents = await asyncio.to_thread(_share_documents, key, build_id, shares)
        for start in range(0, len(documents), SHARE_DOCUMENTS_PER_INSERT):
            await self._shares.insert_many(
                documents[start : start + SHARE_DOCUMENTS_PER_INSERT], ordered=False
            )
        return buckets

    async def changes(
        self, account_id: str, processor: str, after: int, upto: int
    ) -> list[ChurnInputsChange]:
        cursor = self._changes.find(
            {
                "_id": {
                    "$gt": _change_key(account_id, processor, after),
                    "$lte": _change_key(account_id, processor, upto),
                }
            },
            sort=[("_id", ASCENDING)],
        )
        return [
            ChurnInputsChange(
                version=int(str(document["_id"]).rsplit(":", 1)[1]),
                subscription_ids=tuple(document.get("subscription_ids", ())),
                coupons=bool(document.get("coupons")),
            )
            async for document in cursor
        ]

    async def customers_of(
        self, account_id: str, processor: str, stored: StoredChurn, subscription_ids: Set[str]
    ) -> dict[str, str]:
        build_id, buckets = _build_of(stored)
        key = summary_key(account_id, processor)
        customer_of: dict[str, str] = {}
        for document in await self._buckets(
            key, build_id, "s", {_bucket(i, buckets) for i in subscription_ids}
        ):
            for object_id, customer in document["subscriptions"]:
                if object_id in subscription_ids:
                    customer_of[object_id] = customer
        return customer_of

    async def customer_shares(
        self, account_id: str, processor: str, stored: StoredChurn, customers: Set[str]
    ) -> dict[str, list[tuple[str, SubscriptionShare]]]:
        build_id, buckets = _build_of(stored)
        key = summary_key(account_id, processor)
        found: dict[str, list[tuple[str, SubscriptionShare]]] = {}
        for document in await self._buckets(key, build_id, "c", {_bucket(c, buckets) for c in customers}):
            for customer, entries in document["customers"]:
                if customer in customers:
                    found[customer] = [(entry[0], _share_of(customer, entry[1:])) for entry in entries]
        return found

    async def _buckets(self, key: str, build_id: str, kind: str, indexes: Set[int]) -> list[Document]:
        # One look-up by ``_id`` each, at once: cheaper than ``$in`` on the development store.
        found = await asyncio.gather(
            *(self._shares.find_one({"_id": f"{key}:{build_id}:{kind}{index}"}) for index in sorted(indexes))
        )
        if any(document is None for document in found):
            raise LookupError(f"shares of build {build_id} are gone")
        return [document for document in found if document is not None]

    async def inputs_changed(self, account_id: str, processor: str, now: datetime) -> None:
        await churn_inputs_changed(self._database, account_id, processor, now, known=False)

    async def claim_unsettled(
        self, changed_before: datetime, now: datetime, lease_s: float, limit: int
    ) -> list[tuple[str, str]]:
        claimed: list[tuple[str, str]] = []
        while len(claimed) < limit:
            document = await self._summaries.find_one_and_update(
                {"changed_since": {"$lte": changed_before}, "rebuild_lease": {"$not": {"$gt": now}}},
                {"$set": {"rebuild_lease": now + timedelta(seconds=lease_s)}},
            )
            if document is None:
                break
            claimed.append((str(document["account_id"]), str(document["processor"])))
        return claimed


def _share_documents(
    key: str, build_id: str, shares: Mapping[str, Sequence[tuple[str, SubscriptionShare]]]
) -> tuple[int, list[Document]]:
    total = sum(len(customer_shares) for customer_shares in shares.values())
    buckets = max(1, min(MAX_BUCKETS, -(-total // SUBSCRIPTIONS_PER_BUCKET)))
    by_customer: list[list[Any]] = [[] for _ in range(buckets)]
    by_subscription: list[list[Any]] = [[] for _ in range(buckets)]
    for customer, customer_shares in shares.items():
        entries = [[object_id, *_share_fields(share)] for object_id, share in customer_shares]
        by_customer[_bucket(customer, buckets)].append([customer, entries])
        for object_id, _share in customer_shares:
            by_subscription[_bucket(object_id, buckets)].append([object_id, customer])
    documents: list[Document] = [
        {"_id": f"{key}:{build_id}:c{index}", "build_id": build_id, "customers": bucket}
        for index, bucket in enumerate(by_customer)
    ]
    documents += [
        {"_id": f"{key}:{build_id}:s{index}", "build_id": build_id, "subscriptions": bucket}
        for index, bucket in enumerate(by_subscription)
    ]
    return buckets, documents


def _build_of(stored: StoredChurn) -> tuple[str, int]:
    if stored.build_id is None or stored.buckets is None:
        raise LookupError("the summary has no shares")
    return stored.build_id, int(stored.buckets)


def _share_fields(share: SubscriptionShare) -> list[Any]:
    first, last = share.paying if share.paying is not None else (None, None)
    return [share.currency, share.paying is not None, first, last, share.mrr]


def _share_of(customer: str, fields: Sequence[Any]) -> SubscriptionShare:
    currency, paying, first, last, mrr = fields
    return SubscriptionShare(
        customer_id=customer,
        currency=str(currency),
        paying=(int(first), None if last is None else int(last)) if paying else None,
        mrr=int(mrr),
    )


def _document_of(summary: ChurnSummary) -> Document:
    return {
        "counts": dict(summary.currency_counts),
        "months": {
            currency: [[month, *change] for month, change in changes]
            for currency, changes in summary.changes.items()
        },
    }


def _summary_of(document: Mapping[str, Any]) -> ChurnSummary:
    changes: dict[str, tuple[tuple[int, MonthChange], ...]] = {}
    for currency, months in document.get("months", {}).items():
        changes[str(currency)] = tuple(
            (int(month), (int(mrr), int(customers), int(churned_mrr), int(churned_customers)))
            for month, mrr, customers, churned_mrr, churned_customers in months
        )
    counts = {str(currency): int(count) for currency, count in document.get("counts", {}).items()}
    return ChurnSummary(currency_counts=counts, changes=changes)
