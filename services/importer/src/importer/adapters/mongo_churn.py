"""Churn summaries (collection ``churn_summaries``): one document per account and processor.

``_id`` is ``<account_id>:<processor>``. The document holds:

- ``inputs_version``: moved on (``$inc``) by every sync write or removal of a subscription or
  coupon of the account, *after* the record is written;
- ``summary`` (``domain.churn.ChurnSummary``: the currencies and, per currency, the months at which
  something changes), with ``built_at_version`` (the inputs' version read *before* the
  subscriptions were) and ``built_from`` (when that reading started);
- ``changed_since`` while a change is not in a summary yet (the first such change's time; index
  ``(changed_since)`` for the background rebuild), and ``rebuild_lease`` while one process
  rebuilds it.

A summary is current when its ``built_at_version`` is the document's ``inputs_version``: a write
bumps the version after it stores the record and a rebuild reads the version before the records,
so a rebuild that could have missed a write is never taken as current.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from importer.domain.churn import ChurnSummary, MonthChange
from importer.domain.ports import StoredChurn

Document = dict[str, Any]
CHURN_SUMMARIES: Final = "churn_summaries"


def summary_key(account_id: str, processor: str) -> str:
    return f"{account_id}:{processor}"


async def ensure_churn_indexes(database: AsyncDatabase[Document]) -> None:
    await database[CHURN_SUMMARIES].create_index([("changed_since", ASCENDING)], sparse=True)


async def churn_inputs_changed(
    database: AsyncDatabase[Document], account_id: str, processor: str, now: datetime
) -> None:
    """Move the inputs' version of the account on: its summary is no longer current."""
    await database[CHURN_SUMMARIES].update_one(
        {"_id": summary_key(account_id, processor)},
        {
            "$inc": {"inputs_version": 1},
            "$min": {"changed_since": now},
            "$setOnInsert": {"account_id": account_id, "processor": processor},
        },
        upsert=True,
    )


class MongoChurnSummaries:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._database = database
        self._summaries = database[CHURN_SUMMARIES]

    async def read(self, account_id: str, processor: str) -> StoredChurn | None:
        document = await self._summaries.find_one({"_id": summary_key(account_id, processor)})
        if document is None:
            return None
        summary = document.get("summary")
        return StoredChurn(
            inputs_version=int(document.get("inputs_version", 0)),
            summary=None if summary is None else _summary_of(summary),
            built_at_version=document.get("built_at_version"),
            built_from=document.get("built_from"),
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
        self, account_id: str, processor: str, summary: ChurnSummary, *, version: int, built_from: datetime
    ) -> bool:
        key = summary_key(account_id, processor)
        # Never over a summary built from a later reading; never creates the document (an erasure
        # removed it: this reading may hold records it erased).
        result = await self._summaries.update_one(
            {"_id": key, "built_from": {"$not": {"$gt": built_from}}},
            {
                "$set": {
                    "summary": _document_of(summary),
                    "built_at_version": version,
                    "built_from": built_from,
                }
            },
        )
        if result.matched_count == 0:
            return False
        await self._summaries.update_one(
            {"_id": key, "inputs_version": version}, {"$unset": {"changed_since": "", "rebuild_lease": ""}}
        )
        return True

    async def inputs_changed(self, account_id: str, processor: str, now: datetime) -> None:
        await churn_inputs_changed(self._database, account_id, processor, now)

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


def _document_of(summary: ChurnSummary) -> Document:
    return {
        "currencies": list(summary.currencies),
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
    return ChurnSummary(currencies=tuple(document.get("currencies", ())), changes=changes)
