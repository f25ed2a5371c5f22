"""Reads of the HTTP API: an import's state, past cancellations page by page, monthly churn."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from contracts.records import CancellationRecord

from importer.domain.churn import ChurnRow, monthly_churn
from importer.domain.model import ImportJob, ImportStatus
from importer.domain.ports import ImportRepository, RecordQueries


class InvalidCursor(ValueError):
    """A pagination cursor this API did not hand out."""


@dataclass(frozen=True, slots=True)
class CancellationsPage:
    items: list[CancellationRecord]
    next_cursor: str | None


async def import_status(imports: ImportRepository, account_id: str, import_id: str) -> ImportJob | None:
    """The import, if it exists and belongs to the account."""
    job = await imports.get(import_id)
    return job if job is not None and job.account_id == account_id else None


async def latest_import(imports: ImportRepository, account_id: str) -> ImportJob | None:
    return await imports.latest_for_account(account_id)


async def list_cancellations(
    queries: RecordQueries,
    account_id: str,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> CancellationsPage:
    after = decode_cursor(cursor) if cursor else None
    rows = await queries.cancellations_page(
        account_id, since=since, until=until, limit=limit + 1, after=after
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][0], page[-1][1]) if len(rows) > limit and page else None
    return CancellationsPage([record for _, _, record in page], next_cursor)


async def churn(
    imports: ImportRepository, queries: RecordQueries, account_id: str, *, from_month: str, to_month: str
) -> list[ChurnRow]:
    """Monthly churn over the subscriptions of the account's latest completed import's processor.

    Raises ``ValueError`` for a malformed or reversed month range.
    """
    latest = await imports.latest_for_account(account_id, status=ImportStatus.COMPLETED)
    if latest is None:
        return monthly_churn([], {}, from_month=from_month, to_month=to_month)
    processor = latest.processor.value
    coupons = await queries.coupons(account_id, processor)
    subscriptions = [subscription async for subscription in queries.subscriptions(account_id, processor)]
    return monthly_churn(subscriptions, coupons, from_month=from_month, to_month=to_month)


def encode_cursor(at: datetime, key: str) -> str:
    raw = json.dumps([at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = json.loads(raw)
        moment = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as error:
        raise InvalidCursor("the cursor is not one this API returned") from error
    if not isinstance(key, str) or moment.tzinfo is None:
        raise InvalidCursor("the cursor is not one this API returned")
    return moment, key
