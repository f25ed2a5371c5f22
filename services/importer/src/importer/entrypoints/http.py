"""The importer's HTTP API (SPEC "Importer"): imports, past cancellations, monthly churn, recovered
revenue."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from contracts.records import CancellationRecord
from contracts.runtime.http_auth import AuthorizedAccount
from contracts.runtime.http_errors import INVALID_REQUEST, ApiError, documented_errors
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BeforeValidator

from importer.domain.churn import parse_month
from importer.domain.model import ImportJob, ImportStatus, counts
from importer.service import queries
from importer.service.dependencies import Dependencies
from importer.service.recovered_revenue import monthly_recovered_revenue

MAX_PAGE_SIZE: Final = 500
DEFAULT_PAGE_SIZE: Final = 50
MAX_CHURN_MONTHS: Final = 240
#: Years 1970 to 9998: a month range names its next month's first instant too, which year 9999 lacks.
_MONTH_PATTERN: Final = r"^(19[7-9]\d|[2-9]\d{3})-(0[1-9]|1[0-2])$"
_LAST_YEAR: Final = 9998
#: An RFC 3339 date-time, as the OpenAPI document says (no bare Unix seconds).
_DATE_TIME_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(_DATE_TIME_PATTERN, value) is None:
        raise ValueError("expected an RFC 3339 date-time, e.g. 2025-03-01T00:00:00Z")
    return value


DateTimeQuery = Annotated[datetime | None, BeforeValidator(_rfc3339), Query()]


async def _dependencies(request: Request) -> Dependencies:
    # A coroutine, so FastAPI calls it on the event loop: a plain function would be called in a
    # worker thread, a thread hop per request for what is an attribute read.
    deps: Dependencies = request.app.state.dependencies
    return deps


DependenciesDep = Annotated[Dependencies, Depends(_dependencies)]

router = APIRouter(
    prefix="/v1/accounts/{account_id}",
    responses=documented_errors(
        {
            401: "unauthorized: missing or invalid bearer token",
            403: "forbidden: the token belongs to another account",
            422: "invalid_request or invalid_cursor: a path or query value the API does not accept",
        }
    ),
)
_NOT_FOUND: Final = documented_errors({404: "not_found: the account has no such import"})


def import_view(job: ImportJob) -> dict[str, Any]:
    view: dict[str, Any] = {
        "import_id": job.import_id,
        "processor": job.processor.value,
        "status": job.status.public,
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "resources": {key: value.model_dump() for key, value in counts(job.resources).items()},
    }
    if job.status is ImportStatus.COMPLETED:
        view["past_cancellations"] = job.past_cancellations or 0
    if job.status is ImportStatus.FAILED:
        view["error"] = {"code": job.error_code, "message": job.error_message}
    return view


@router.get("/imports/latest", responses=_NOT_FOUND)
async def latest_import(account_id: AuthorizedAccount, deps: DependenciesDep) -> dict[str, Any]:
    job = await queries.latest_import(deps.imports, deps.announced, account_id)
    if job is None:
        raise ApiError(404, "not_found", "the account has no import")
    return import_view(job)


@router.get("/imports/{import_id}", responses=_NOT_FOUND)
async def get_import(
    account_id: AuthorizedAccount,
    import_id: Annotated[str, Path(min_length=1, max_length=128)],
    deps: DependenciesDep,
) -> dict[str, Any]:
    job = await queries.import_status(deps.imports, deps.announced, account_id, import_id)
    if job is None:
        raise ApiError(404, "not_found", "no such import for this account")
    return import_view(job)


@router.get("/cancellations")
async def list_cancellations(
    *,
    account_id: AuthorizedAccount,
    deps: DependenciesDep,
    since: DateTimeQuery = None,
    until: DateTimeQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        raise ApiError(422, INVALID_REQUEST, "since is after until")
    try:
        page = await queries.list_cancellations(
            deps.queries, account_id, since=since, until=until, limit=limit, cursor=cursor
        )
    except queries.InvalidCursor as error:
        raise ApiError(422, "invalid_cursor", str(error)) from error
    return {"items": [cancellation_view(item) for item in page.items], "next_cursor": page.next_cursor}


def cancellation_view(record: CancellationRecord) -> dict[str, Any]:
    return {
        "processor": record.processor.value,
        "customer_id": record.customer_id,
        "subscription_id": record.subscription_id,
        "canceled_at": _time(record.canceled_at),
        "ended_at": _time(record.ended_at),
        "reason": record.reason,
        "reason_code": record.reason_code,
        "feedback": record.feedback,
        "comment": record.comment,
        "mrr_lost": {"amount": record.mrr_lost.amount, "currency": record.mrr_lost.currency},
        "plan": record.plan,
    }


async def _month_range(
    from_month: Annotated[str, Query(alias="from", pattern=_MONTH_PATTERN)],
    to_month: Annotated[str, Query(alias="to", pattern=_MONTH_PATTERN)],
) -> tuple[str, str]:
    """A metric's ``from``..``to``: in order, at most ``MAX_CHURN_MONTHS`` months, each countable."""
    (from_year, from_index), (to_year, to_index) = parse_month(from_month), parse_month(to_month)
    if to_year > _LAST_YEAR:
        raise ApiError(422, INVALID_REQUEST, f"months after {_LAST_YEAR}-12 cannot be counted")
    months = (to_year - from_year) * 12 + (to_index - from_index) + 1
    if months < 1:
        raise ApiError(422, INVALID_REQUEST, "from is after to")
    if months > MAX_CHURN_MONTHS:
        raise ApiError(422, INVALID_REQUEST, f"at most {MAX_CHURN_MONTHS} months at once")
    return from_month, to_month


MonthRange = Annotated[tuple[str, str], Depends(_month_range)]


@router.get("/metrics/churn")
async def churn(account_id: AuthorizedAccount, deps: DependenciesDep, months: MonthRange) -> dict[str, Any]:
    from_month, to_month = months
    rows = await queries.churn(
        deps.imports, deps.queries, account_id, from_month=from_month, to_month=to_month, summaries=deps.churn
    )
    return {"items": [row.model_dump() for row in rows]}


@router.get("/metrics/recovered-revenue")
async def recovered_revenue(
    account_id: AuthorizedAccount, deps: DependenciesDep, months: MonthRange
) -> dict[str, Any]:
    from_month, to_month = months
    rows = await monthly_recovered_revenue(
        deps.imports,
        deps.queries,
        deps.recovered_revenue,
        account_id,
        from_month=from_month,
        to_month=to_month,
        now=datetime.now(UTC),
    )
    return {"items": [row.model_dump() for row in rows]}


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
