"""The ``connections`` collection in MongoDB, through pymongo's async client.

One document per connection (``_id`` = connection id). ``active`` is true while it is the account's
current connection; a partial unique index on ``account_id`` over active documents is what makes
"one current connection per account" hold under concurrent requests. Events waiting to be published
sit in the document's ``outbox`` and are written in the same update as the change they announce.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, Final
from uuid import UUID

from contracts.connections import CONNECTIONS_COLLECTION, ConnectionStatus
from contracts.events import CONNECTION_EVENTS, OFFER_EVENTS
from contracts.runtime.mongo import durable
from contracts.topics import CONNECTIONS, OFFERS
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from connector.adapters.mongo_store import REVOKE_GRANT_FIELD, Document
from connector.domain.connection import (
    IMPORT_IN_PROGRESS_STATUSES,
    Connection,
    ImportStatus,
    LatestImport,
    LossReason,
    PendingReconnect,
    Reconnection,
)
from connector.domain.ports import AccountBusy, Outgoing

#: Failed attempts to revoke a grant so far, and when the next one is due (backoff per grant).
REVOKE_ATTEMPTS_FIELD: Final = "revoke_grant_attempts"
REVOKE_RETRY_AT_FIELD: Final = "revoke_grant_retry_at"

#: Where a pending Stripe reconnect keeps its new key, encrypted.
_PENDING_CIPHERTEXT: Final = "pending_reconnect.credentials_ciphertext"

#: An import's status only moves forward: a late or redelivered event never moves it back.
_PRECEDING_STATUSES: Final = {
    ImportStatus.RUNNING: [ImportStatus.QUEUED.value],
    ImportStatus.COMPLETED: [ImportStatus.QUEUED.value, ImportStatus.RUNNING.value],
    ImportStatus.FAILED: [ImportStatus.QUEUED.value, ImportStatus.RUNNING.value],
}


def _bson(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return _bson(value.model_dump(by_alias=True))
    if isinstance(value, Mapping):
        return {str(key): _bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bson(item) for item in value]
    return value


def _outbox_entries(events: Sequence[Outgoing], queued_at: datetime) -> list[Document]:
    return [
        {
            "event_id": str(item.event.event_id),
            "topic": item.topic,
            "body": item.event.model_dump_json(),
            "queued_at": queued_at,
        }
        for item in events
    ]


def _push(events: Sequence[Outgoing], queued_at: datetime) -> Document:
    return {"$push": {"outbox": {"$each": _outbox_entries(events, queued_at)}}} if events else {}


#: What the outbox may hold, per topic: the connection's own events and the offers applied through it.
_OUTBOX_EVENTS: Final = {CONNECTIONS: CONNECTION_EVENTS, OFFERS: OFFER_EVENTS}


def _outgoing(entry: Mapping[str, Any]) -> Outgoing:
    event = _OUTBOX_EVENTS.get(str(entry["topic"]), CONNECTION_EVENTS).parse(entry["body"])
    if event is None:
        raise ValueError(f"outbox entry {entry.get('event_id')} holds an event of no known type")
    return Outgoing(str(entry["topic"]), event)


class MongoConnectionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        # Credentials and the outbox of events to publish: a lost write loses them.
        self._connections = durable(db[CONNECTIONS_COLLECTION])

    async def get(self, connection_id: str) -> Connection | None:
        return self._load(await self._connections.find_one({"_id": connection_id}))

    async def active(self, account_id: str) -> Connection | None:
        return self._load(await self._connections.find_one({"account_id": account_id, "active": True}))

    async def latest(self, account_id: str) -> Connection | None:
        return await self.active(account_id) or self._load(
            await self._connections.find_one({"account_id": account_id}, sort=[("created_at", DESCENDING)])
        )

    async def open(self, connection: Connection, events: Sequence[Outgoing]) -> None:
        document = _bson(connection.model_dump(by_alias=True, exclude_none=True))
        document["active"] = connection.active
        document["outbox"] = _outbox_entries(events, connection.created_at)
        try:
            await self._connections.insert_one(document)
        except DuplicateKeyError as error:
            raise AccountBusy(connection.account_id) from error

    async def authorize(
        self,
        connection_id: str,
        *,
        credentials_ciphertext: str,
        connected_at: datetime,
        latest_import: LatestImport,
        events: Sequence[Outgoing],
        write_access: bool = False,
        write_access_reason: str | None = None,
    ) -> Connection | None:
        updated = await self._connections.find_one_and_update(
            {"_id": connection_id, "status": ConnectionStatus.AWAITING_AUTHORIZATION.value},
            {
                "$set": {
                    "status": ConnectionStatus.CONNECTED.value,
                    "active": True,
                    "credentials_ciphertext": credentials_ciphertext,
                    "connected_at": connected_at,
                    "latest_import": _bson(latest_import),
                    "write_access": write_access,
                    "write_access_reason": write_access_reason,
                },
                **_push(events, connected_at),
            },
            return_document=ReturnDocument.AFTER,
        )
        return self._load(updated)

    async def disconnect(
        self,
        connection_id: str,
        *,
        from_status: ConnectionStatus,
        at: datetime,
        events: Sequence[Outgoing] = (),
        revoke_grant_of: str | None = None,
    ) -> bool:
        revoke = {} if revoke_grant_of is None else {REVOKE_GRANT_FIELD: revoke_grant_of}
        result = await self._connections.update_one(
            {"_id": connection_id, "status": from_status.value},
            {
                "$set": {
                    "status": ConnectionStatus.DISCONNECTED.value,
                    "active": False,
                    "disconnected_at": at,
                    **revoke,
                },
                # Removing the ciphertext is what destroys the credentials (a pending reconnect's too).
                "$unset": {"credentials_ciphertext": "", "pending_reconnect": ""},
                **_push(events, at),
            },
        )
        return result.matched_count == 1

    async def begin_reconnect(
        self, connection_id: str, pending: PendingReconnect, events: Sequence[Outgoing]
    ) -> bool:
        update: Document = {
            "$set": {"pending_reconnect": _bson(pending)},
            **_push(events, pending.requested_at),
        }
        if pending.request_event_id is not None:
            update["$addToSet"] = {"reconnect_request_ids": str(pending.request_event_id)}
        result = await self._connections.update_one(
            {"_id": connection_id, "status": ConnectionStatus.NEEDS_RECONNECT.value}, update
        )
        return result.matched_count == 1

    async def reconnect(
        self, connection_id: str, reconnection: Reconnection, events: Sequence[Outgoing]
    ) -> Connection | None:
        changes: Document = {
            "status": ConnectionStatus.CONNECTED.value,
            "active": True,
            # Set over the old one: the lost credentials' ciphertext is gone with this write.
            "credentials_ciphertext": reconnection.credentials_ciphertext,
            "reconnected_at": reconnection.at,
            "write_access": reconnection.write_access,
            "write_access_reason": reconnection.write_access_reason,
        }
        for name in ("mode", "contact_email", "product_catalog", "latest_import"):
            value = getattr(reconnection, name)
            if value is not None:
                changes[name] = _bson(value)
        update: Document = {
            "$set": changes,
            "$unset": {"pending_reconnect": ""},
            # Other credentials: a later refusal of the ones replaced here is told apart by this.
            "$inc": {"credentials_version": 1},
            **_push(events, reconnection.at),
        }
        if reconnection.request_event_id is not None:
            update["$addToSet"] = {"reconnect_request_ids": str(reconnection.request_event_id)}
        updated = await self._connections.find_one_and_update(
            {"_id": connection_id, "status": ConnectionStatus.NEEDS_RECONNECT.value},
            update,
            return_document=ReturnDocument.AFTER,
        )
        return self._load(updated)

    async def drop_pending_reconnect(
        self, connection_id: str, events: Sequence[Outgoing] = (), *, ciphertext: str | None = None
    ) -> bool:
        at = _now_of(events) if events else None
        query: Document = {"_id": connection_id, "pending_reconnect": {"$exists": True}}
        if ciphertext is not None:
            query[_PENDING_CIPHERTEXT] = ciphertext
        result = await self._connections.update_one(
            query,
            {"$unset": {"pending_reconnect": ""}, **(_push(events, at) if at is not None else {})},
        )
        return result.matched_count == 1

    async def pending_reconnects_since(self, before: datetime, *, limit: int) -> list[Connection]:
        cursor = self._connections.find(
            {"pending_reconnect.requested_at": {"$lt": before}},
            sort=[("pending_reconnect.requested_at", ASCENDING)],
            limit=limit,
        )
        return [Connection.model_validate(document) async for document in cursor]

    async def reconnected_by(self, request_event_id: UUID) -> Connection | None:
        return self._load(await self._connections.find_one({"reconnect_request_ids": str(request_event_id)}))

    async def lose_credentials(
        self,
        connection_id: str,
        *,
        reason: LossReason,
        at: datetime,
        events: Sequence[Outgoing],
        credentials_version: int | None = None,
    ) -> Connection | None:
        # Conditional on ``connected``: of two reports of one loss, exactly one writes (and announces).
        query: Document = {"_id": connection_id, "status": ConnectionStatus.CONNECTED.value}
        if credentials_version is not None:
            # Only the credentials refused are lost: not those a reconnect put in place meanwhile.
            query["credentials_version"] = (
                {"$in": [None, 0]} if credentials_version == 0 else {"$lte": credentials_version}
            )
        updated = await self._connections.find_one_and_update(
            query,
            {
                "$set": {
                    "status": ConnectionStatus.NEEDS_RECONNECT.value,
                    "active": True,
                    "credentials_lost_at": at,
                    "loss_reason": reason,
                },
                **_push(events, at),
            },
            return_document=ReturnDocument.AFTER,
        )
        return self._load(updated)

    async def revoke_grant_later(self, connection_id: str, stripe_user_id: str) -> None:
        await self._connections.update_one(
            {"_id": connection_id}, {"$set": {REVOKE_GRANT_FIELD: stripe_user_id}}
        )

    async def awaiting_authorization_since(self, before: datetime, *, limit: int) -> list[Connection]:
        cursor = self._connections.find(
            {"status": ConnectionStatus.AWAITING_AUTHORIZATION.value, "created_at": {"$lt": before}},
            sort=[("created_at", ASCENDING)],
            limit=limit,
        )
        return [Connection.model_validate(document) async for document in cursor]

    async def grants_to_revoke(self, *, limit: int, due_by: datetime | None = None) -> list[tuple[str, str]]:
        query: Document = {REVOKE_GRANT_FIELD: {"$exists": True}}
        if due_by is not None:
            query["$or"] = [
                {REVOKE_RETRY_AT_FIELD: {"$exists": False}},
                {REVOKE_RETRY_AT_FIELD: {"$lte": due_by}},
            ]
        cursor = self._connections.find(
            query,
            projection={REVOKE_GRANT_FIELD: True},
            sort=[(REVOKE_RETRY_AT_FIELD, ASCENDING), ("_id", ASCENDING)],
            limit=limit,
        )
        return [(str(document["_id"]), str(document[REVOKE_GRANT_FIELD])) async for document in cursor]

    async def revocation_deferred(
        self, connection_id: str, stripe_user_id: str, *, retry_at: Callable[[int], datetime]
    ) -> int:
        counted = await self._connections.find_one_and_update(
            {"_id": connection_id, REVOKE_GRANT_FIELD: stripe_user_id},
            {"$inc": {REVOKE_ATTEMPTS_FIELD: 1}},
            projection={REVOKE_ATTEMPTS_FIELD: True},
            return_document=ReturnDocument.AFTER,
        )
        if counted is None:
            return 0  # revoked meanwhile
        attempts = int(counted[REVOKE_ATTEMPTS_FIELD])
        await self._connections.update_one(
            {"_id": connection_id, REVOKE_GRANT_FIELD: stripe_user_id},
            {"$set": {REVOKE_RETRY_AT_FIELD: retry_at(attempts)}},
        )
        return attempts

    async def grant_revoked(self, connection_id: str, stripe_user_id: str) -> None:
        await self._connections.update_one(
            {"_id": connection_id, REVOKE_GRANT_FIELD: stripe_user_id},
            {"$unset": {REVOKE_GRANT_FIELD: "", REVOKE_ATTEMPTS_FIELD: "", REVOKE_RETRY_AT_FIELD: ""}},
        )

    async def request_import(
        self, connection_id: str, latest_import: LatestImport, events: Sequence[Outgoing]
    ) -> bool:
        result = await self._connections.update_one(
            {
                "_id": connection_id,
                "status": ConnectionStatus.CONNECTED.value,
                # Conditional, so that of two requests racing exactly one starts an import.
                "latest_import.status": {
                    "$nin": sorted(status.value for status in IMPORT_IN_PROGRESS_STATUSES)
                },
            },
            {"$set": {"latest_import": _bson(latest_import)}, **_push(events, latest_import.requested_at)},
        )
        return result.matched_count == 1

    async def record_import(
        self,
        account_id: str,
        import_id: str,
        *,
        status: ImportStatus,
        at: datetime,
        error_code: str | None = None,
    ) -> bool:
        changes: Document = {"latest_import.status": status.value}
        if status is ImportStatus.RUNNING:
            changes["latest_import.started_at"] = at
        else:
            changes["latest_import.finished_at"] = at
        if error_code is not None:
            changes["latest_import.error_code"] = error_code
        result = await self._connections.update_one(
            {
                "account_id": account_id,
                "latest_import.import_id": import_id,
                "latest_import.status": {"$in": _PRECEDING_STATUSES[status]},
            },
            {"$set": changes},
        )
        return result.matched_count == 1

    async def add_events(self, connection_id: str, events: Sequence[Outgoing]) -> None:
        if events:
            await self._connections.update_one({"_id": connection_id}, _push(events, _now_of(events)))

    async def mark_published(self, connection_id: str, event_ids: Sequence[str]) -> None:
        await self._connections.update_one(
            {"_id": connection_id}, {"$pull": {"outbox": {"event_id": {"$in": list(event_ids)}}}}
        )

    async def unpublished(self, *, queued_before: datetime, limit: int) -> list[tuple[str, list[Outgoing]]]:
        cursor = self._connections.find(
            {"outbox.queued_at": {"$lt": queued_before}},
            projection={"outbox": True},
            sort=[("outbox.queued_at", ASCENDING)],
            limit=limit,
        )
        return [
            (str(document["_id"]), [_outgoing(entry) for entry in document.get("outbox", [])])
            async for document in cursor
        ]

    async def stored_credentials(self) -> AsyncIterator[tuple[str, str]]:
        cursor = self._connections.find(
            {"credentials_ciphertext": {"$type": "string"}}, projection={"credentials_ciphertext": True}
        )
        async for document in cursor:
            yield str(document["_id"]), str(document["credentials_ciphertext"])

    async def replace_credentials(self, connection_id: str, *, old: str, new: str) -> bool:
        result = await self._connections.update_one(
            {"_id": connection_id, "credentials_ciphertext": old}, {"$set": {"credentials_ciphertext": new}}
        )
        return result.matched_count == 1

    async def stored_pending_credentials(self) -> AsyncIterator[tuple[str, str]]:
        cursor = self._connections.find(
            {_PENDING_CIPHERTEXT: {"$type": "string"}}, projection={_PENDING_CIPHERTEXT: True}
        )
        async for document in cursor:
            yield str(document["_id"]), str(document["pending_reconnect"]["credentials_ciphertext"])

    async def replace_pending_credentials(self, connection_id: str, *, old: str, new: str) -> bool:
        result = await self._connections.update_one(
            {"_id": connection_id, _PENDING_CIPHERTEXT: old}, {"$set": {_PENDING_CIPHERTEXT: new}}
        )
        return result.matched_count == 1

    @staticmethod
    def _load(document: Document | None) -> Connection | None:
        return None if document is None else Connection.model_validate(document)


def _now_of(events: Sequence[Outgoing]) -> datetime:
    return events[0].event.occurred_at
