"""`GET /api/v2/events` and `GET /api/v2/events/{id}` of the fake Chargebee.

Parameters like Chargebee's: `limit` (1-100), `offset` / `next_offset`, `sort_by[asc|desc]=occurred_at`
(default newest first), `occurred_at[after|before|on|between]`, `event_type[is|is_not|in|not_in]`,
`source[...]`, `webhook_status[...]`, `id[...]`, and the deprecated `start_time` / `end_time`.
Answers `{list: [{event: …}], next_offset?}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sandbox.collection import Obj
from sandbox.events import EventLog, scan
from sandbox.fake_chargebee.errors import not_found, wrong_value
from sandbox.fake_chargebee.lists import (
    ListQuery,
    ResourceSpec,
    _kinds,
    _range_bounds,
    build_check,
    parse_list_query,
)

EVENTS_SPEC = ResourceSpec(
    "events",
    "event",
    "occurred_at",
    ("occurred_at",),
    {
        "id": "string",
        **_kinds("enum", "event_type", "source", "webhook_status"),
        "occurred_at": "timestamp",
    },
)


def parse_event_query(params: Iterable[tuple[str, str]]) -> ListQuery:
    rest: list[tuple[str, str]] = []
    extra: list[tuple[str, str, str]] = []
    for name, value in params:
        if name == "start_time":
            extra.append(("occurred_at", "gte", value))
        elif name == "end_time":
            extra.append(("occurred_at", "lte", value))
        else:
            rest.append((name, value))
    query = parse_list_query(EVENTS_SPEC, rest)
    query.filters += extra
    return query


def _bounds(query: ListQuery) -> tuple[int | None, int | None]:
    low: int | None = None
    high: int | None = None
    for attribute, op, value in query.filters:
        if attribute != "occurred_at" or op == "is_present":
            continue
        lo, hi = _range_bounds(f"{attribute}[{op}]", op, value)
        low = lo if low is None or lo is None else max(low, lo)
        high = hi if high is None or hi is None else min(high, hi)
    return low, high


def _offset_position(log: EventLog, offset: str) -> int:
    try:
        raw = json.loads(offset)
    except ValueError:
        raw = None
    position = log.position(str(raw[1])) if isinstance(raw, list) and len(raw) == 2 else None
    if position is None:
        raise wrong_value("offset", "The offset value is invalid")
    return position


def list_events(log: EventLog, query: ListQuery) -> tuple[list[Obj], str | None]:
    """One page and the offset of the next one (None on the last page)."""
    view = log.view()
    low, high = _bounds(query)
    lo, hi = view.bounds(gte=low, lte=high)
    checks = [
        build_check(EVENTS_SPEC, attribute, op, value)
        for attribute, op, value in query.filters
        if attribute != "occurred_at" or op == "is_present"
    ]
    if query.offset is not None:
        position = _offset_position(log, query.offset)
        if query.descending:
            hi = max(lo, min(hi, position))
        else:
            lo = min(hi, max(lo, position + 1))
    items, more = scan(
        view, lo, hi, descending=query.descending, limit=query.limit, keep=lambda e: all(c(e) for c in checks)
    )
    next_offset = None
    if more and items:
        last = items[-1]
        next_offset = json.dumps([str(last["occurred_at"]), str(last["id"])], separators=(",", ":"))
    return items, next_offset


def retrieve_event(log: EventLog, event_id: str) -> Obj:
    event = log.get(event_id)
    if event is None:
        raise not_found("event", "event_id")
    return event
