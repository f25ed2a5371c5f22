"""The ``imports`` collection: one document per import job, every transition one conditional update."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from contracts.events import Mode, Processor
from contracts.runtime.mongo import durable
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from importer.adapters.mongo_store import CONNECTION_SLOT, IMPORTS, Document
from importer.domain.model import ImportJob, ImportStatus

_UNFINISHED: Final = [ImportStatus.QUEUED.value, ImportStatus.RUNNING.value, ImportStatus.FINALIZING.value]
_FLAGS: Final = frozenset({"pages_published", "started_published", "outcome_published"})


def _job_document(job: ImportJob) -> Document:
    return {
        "_id": job.import_id,
        "account_id": job.account_id,
        "connection_id": job.connection_id,
        "processor": job.processor.value,
        "mode": None if job.mode is None else job.mode.value,
        "contact_email": job.contact_email,
        "status": job.status.value,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "resources": dict(job.resources),
        "past_cancellations": job.past_cancellations,
        "error": None,
        "pages_published": job.pages_published,
        "started_published": job.started_published,
        "outcome_published": job.outcome_published,
        "lease_until": None,
        "progress_at": None,
    }


def _job(document: Mapping[str, Any]) -> ImportJob:
    error = document.get("error") or {}
    return ImportJob(
        import_id=document["_id"],
        account_id=document["account_id"],
        connection_id=document["connection_id"],
        processor=Processor(document["processor"]),
        contact_email=document["contact_email"],
        status=ImportStatus(document["status"]),
        created_at=document["created_at"],
        mode=None if document.get("mode") is None else Mode(document["mode"]),
        started_at=document.get("started_at"),
        finished_at=document.get("finished_at"),
        resources={str(key): int(value) for key, value in (document.get("resources") or {}).items()},
        past_cancellations=document.get("past_cancellations"),
        error_code=error.get("code"),
        error_message=error.get("message"),
        error_credentials_version=error.get("credentials_version"),
        pages_published=bool(document.get("pages_published")),
        started_published=bool(document.get("started_published")),
        outcome_published=bool(document.get("outcome_published")),
    )


class MongoImportRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        # An import's state and its crash-safety flags: a lost write could publish an outcome twice.
        self._imports: AsyncCollection[Document] = durable(database[IMPORTS])

    async def create(self, job: ImportJob) -> bool:
        try:
            await self._imports.insert_one(_job_document(job))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, import_id: str) -> ImportJob | None:
        document = await self._imports.find_one({"_id": import_id})
        return None if document is None else _job(document)

    async def latest_for_account(
        self, account_id: str, status: ImportStatus | None = None
    ) -> ImportJob | None:
        query: Document = {"account_id": account_id}
        if status is not None:
            query["status"] = status.value
        document = await self._imports.find_one(query, sort=[("created_at", DESCENDING), ("_id", DESCENDING)])
        return None if document is None else _job(document)

    async def writing_since(self, account_id: str, instant: datetime) -> bool:
        # Two look-ups along (account_id, created_at) rather than one ``$or``: the development
        # store scans the collection for a top-level ``$or``.
        writing = [ImportStatus.RUNNING.value, ImportStatus.FINALIZING.value]
        if await self._imports.find_one({"account_id": account_id, "status": {"$in": writing}}, {"_id": 1}):
            return True
        ended = await self._imports.find_one(
            {"account_id": account_id, "finished_at": {"$gt": instant}}, {"_id": 1}
        )
        return ended is not None

    async def mark_running(
        self,
        job: ImportJob,
        now: datetime,
        resources: Mapping[str, int] | None = None,
    ) -> ImportJob | None:
        try:
            return await self._transition(
                {"_id": job.import_id, "status": ImportStatus.QUEUED.value},
                {
                    "status": ImportStatus.RUNNING.value,
                    "started_at": now,
                    "resources": dict(resources or {}),
                    CONNECTION_SLOT: job.connection_id,
                },
            )
        except DuplicateKeyError:
            return None  # another import of the connection holds its slot: this one waits, queued

    async def set_flag(self, import_id: str, flag: str) -> None:
        if flag not in _FLAGS:
            raise ValueError(f"unknown flag {flag!r}")
        await self._imports.update_one({"_id": import_id}, {"$set": {flag: True}})

    async def fail(
        self,
        import_id: str,
        code: str,
        message: str,
        now: datetime,
        *,
        credentials_version: int | None = None,
    ) -> ImportJob | None:
        error: Document = {"code": code, "message": message}
        if credentials_version is not None:
            error["credentials_version"] = credentials_version
        return await self._transition(
            {"_id": import_id, "status": {"$in": _UNFINISHED}},
            {
                "status": ImportStatus.FAILED.value,
                "finished_at": now,
                "error": error,
                "outcome_published": False,
            },
            unset=(CONNECTION_SLOT,),
        )

    async def claim_finalization(self, import_id: str, now: datetime, lease_s: float) -> ImportJob | None:
        return await self._transition(
            {
                "_id": import_id,
                "$or": [
                    {"status": ImportStatus.RUNNING.value},
                    {"status": ImportStatus.FINALIZING.value, "lease_until": {"$lt": now}},
                ],
            },
            {"status": ImportStatus.FINALIZING.value, "lease_until": now + timedelta(seconds=lease_s)},
        )

    async def complete(
        self, import_id: str, resources: Mapping[str, int], past_cancellations: int, now: datetime
    ) -> ImportJob | None:
        return await self._transition(
            {"_id": import_id, "status": ImportStatus.FINALIZING.value},
            {
                "status": ImportStatus.COMPLETED.value,
                "finished_at": now,
                "resources": dict(resources),
                "past_cancellations": past_cancellations,
                "lease_until": None,
                "outcome_published": False,
            },
            unset=(CONNECTION_SLOT,),
        )

    async def add_progress(self, import_id: str, counts: Mapping[str, int]) -> None:
        # Only while running: once finalizing, the counts are the ledger's exact ones.
        await self._imports.update_one(
            {"_id": import_id, "status": ImportStatus.RUNNING.value},
            {"$inc": {f"resources.{key}": value for key, value in counts.items()}},
        )

    async def claim_progress(self, import_id: str, now: datetime, interval_s: float) -> bool:
        result = await self._imports.update_one(
            {
                "_id": import_id,
                "status": ImportStatus.RUNNING.value,
                "$or": [
                    {"progress_at": None},
                    {"progress_at": {"$lte": now - timedelta(seconds=interval_s)}},
                ],
            },
            {"$set": {"progress_at": now}},
        )
        return result.modified_count == 1

    async def unfinished_for_connection(self, connection_id: str) -> list[ImportJob]:
        cursor = self._imports.find({"connection_id": connection_id, "status": {"$in": _UNFINISHED}})
        return [_job(document) async for document in cursor]

    async def needing_attention(
        self, now: datetime, *, queued_before: datetime | None = None
    ) -> list[ImportJob]:
        waiting = (
            []
            if queued_before is None
            else [{"status": ImportStatus.QUEUED.value, "created_at": {"$lt": queued_before}}]
        )
        cursor = self._imports.find(
            {
                "$or": [
                    *waiting,
                    {"status": ImportStatus.RUNNING.value},
                    {"status": ImportStatus.FINALIZING.value, "lease_until": {"$lt": now}},
                    {
                        "status": {"$in": [ImportStatus.COMPLETED.value, ImportStatus.FAILED.value]},
                        "outcome_published": False,
                    },
                ]
            }
        )
        return [_job(document) async for document in cursor]

    async def _transition(
        self, query: Document, changes: Document, *, unset: Sequence[str] = ()
    ) -> ImportJob | None:
        from pymongo import ReturnDocument

        update: Document = {"$set": changes}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        document = await self._imports.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return None if document is None else _job(document)
