"""Reads of the HTTP API: an import's state, past cancellations page by page, monthly churn."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from contracts.records import CancellationRecord

from importer.domain.churn import CHURN_FIELDS, ChurnRow, ChurnSweep, month_starts, monthly_churn
from importer.domain.model import ImportJob, ImportStatus
from importer.domain.ports import AnnouncedImports, ImportRepository, RecordQueries
from importer.service.churn_summaries import CHURN_BATCH_SIZE, ChurnSummaryKeeper


class InvalidCursor(ValueError):
    """A pagination cursor this API did not hand out."""


@dataclass(frozen=True, slots=True)
class CancellationsPage:
    items: list[CancellationRecord]
    next_cursor: str | None


async def import_status(
    imports: ImportRepository, announced: AnnouncedImports, account_id: str, import_id: str
) -> ImportJob | None:
    """The import, if it exists and belongs to the account; ``queued`` while only the connector's
    announcement of it exists (its event not consumed yet)."""
    job = await imports.get(import_id)
    if job is not None:
        return job if job.account_id == account_id else None
    pending = await announced.latest(account_id)
    return pending if pending is not None and pending.import_id == import_id else None


async def latest_import(
    imports: ImportRepository, announced: AnnouncedImports, account_id: str
) -> ImportJob | None:
    """The account's newest import: the one the connector announced last reads ``queued`` from the
    moment it was asked for, before the importer has consumed its event."""
    job = await imports.latest_for_account(account_id)
    pending = await announced.latest(account_id)
    if pending is None or (job is not None and job.created_at > pending.created_at):
        return job
    if job is not None and job.import_id == pending.import_id:
        return job
    return await imports.get(pending.import_id) or pending


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
    imports: ImportRepository,
    queries: RecordQueries,
    account_id: str,
    *,
    from_month: str,
    to_month: str,
    summaries: ChurnSummaryKeeper | None = None,
) -> list[ChurnRow]:
    """Monthly churn over the subscriptions of the account's latest completed import's processor:
    from its current summary (``service.churn_summaries``) when ``summaries`` are kept, else
    computed from every subscription.

    Raises ``ValueError`` for a malformed or reversed month range.
    """
    month_starts(from_month, to_month)  # a bad range fails before anything is read
    latest = await imports.latest_for_account(account_id, status=ImportStatus.COMPLETED)
    if latest is None:
        return monthly_churn([], {}, from_month=from_month, to_month=to_month)
    processor = latest.processor.value
    if summaries is not None:
        summary = await summaries.current(account_id, processor)
        return summary.rows(from_month=from_month, to_month=to_month)
    coupons = await queries.coupons(account_id, processor)
    sweep = ChurnSweep(coupons, from_month=from_month, to_month=to_month)
    batches = queries.subscription_batches(
        account_id, processor, fields=CHURN_FIELDS, batch_size=CHURN_BATCH_SIZE
    )
    # The computation is pure CPU: it runs in a worker thread, batch by batch, so the event loop
    # (page consumers, other requests) keeps turning and no batch outlives its turn.
    async for batch in batches:
        await asyncio.to_thread(sweep.add, batch)
    return await asyncio.to_thread(sweep.rows)


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
