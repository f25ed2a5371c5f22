"""`GET /v1/events` and `GET /v1/events/{id}`: an account's events of the last 30 days, newest first.

Filters like Stripe's: `created` (exact or `[gt|gte|lt|lte]`), `type` (a `*` wildcard allowed,
`customer.*`), `types[]` (up to 20 exact types), `limit` (1-100), `starting_after` /
`ending_before` (event ids). Events of one second are ordered by when they happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sandbox.collection import Obj
from sandbox.events import EventLog, scan
from sandbox.fake_stripe.errors import StripeError
from sandbox.fake_stripe.lists import Paging, parse_paging

_TYPES = re.compile(r"types\[\d*\]")
MAX_TYPES = 20


@dataclass
class EventQuery(Paging):
    type: str | None = None
    types: list[str] = field(default_factory=list)
    delivery_success: bool | None = None


def _parse_param(query: EventQuery, name: str, value: str) -> None:
    if parse_paging(query, name, value):
        return
    if name == "type":
        query.type = value
    elif _TYPES.fullmatch(name):
        query.types.append(value)
    elif name == "delivery_success":
        if value not in ("true", "false"):
            raise StripeError(400, f"Invalid boolean: {value}", param=name)
        query.delivery_success = value == "true"
    elif not name.startswith("expand["):
        raise StripeError(400, f"Received unknown parameter: {name}", param=name)


def parse_event_query(params: Iterable[tuple[str, str]]) -> EventQuery:
    query = EventQuery()
    for name, value in params:
        _parse_param(query, name, value)
    if query.starting_after and query.ending_before:
        raise StripeError(400, "You may only specify one of these parameters: ending_before, starting_after.")
    if query.type and query.types:
        raise StripeError(400, "You may only specify one of these parameters: type, types.", param="types")
    if len(query.types) > MAX_TYPES:
        raise StripeError(400, f"You may pass at most {MAX_TYPES} types.", param="types")
    return query


def _type_test(query: EventQuery) -> Callable[[Obj], bool]:
    if query.types:
        wanted = frozenset(query.types)
        return lambda event: event["type"] in wanted
    if query.type is None:
        return lambda _event: True
    if "*" in query.type:
        pattern = re.compile(".*".join(re.escape(part) for part in query.type.split("*")))
        return lambda event: pattern.fullmatch(str(event["type"])) is not None
    exact = query.type
    return lambda event: event["type"] == exact


def _no_such_event(event_id: str, param: str) -> StripeError:
    return StripeError(400, f"No such event: '{event_id}'", code="resource_missing", param=param)


def list_events(log: EventLog, query: EventQuery, oldest_kept: int) -> tuple[list[Obj], bool]:
    """One page of events newest first, and `has_more`."""
    view = log.view()
    c = query.created
    gte = max(c.get("gte", oldest_kept), oldest_kept)
    lo, hi = view.bounds(gt=c.get("gt"), gte=gte, lt=c.get("lt"), lte=c.get("lte"))
    keep = _type_test(query)
    if query.starting_after is not None:
        position = log.position(query.starting_after)
        if position is None or position < view.bounds(gte=oldest_kept)[0]:
            raise _no_such_event(query.starting_after, "starting_after")
        return scan(view, lo, max(lo, min(hi, position)), descending=True, limit=query.limit, keep=keep)
    if query.ending_before is not None:
        position = log.position(query.ending_before)
        if position is None or position < view.bounds(gte=oldest_kept)[0]:
            raise _no_such_event(query.ending_before, "ending_before")
        items, more = scan(
            view, min(hi, max(lo, position + 1)), hi, descending=False, limit=query.limit, keep=keep
        )
        return items[::-1], more
    return scan(view, lo, hi, descending=True, limit=query.limit, keep=keep)


def retrieve_event(log: EventLog, event_id: str, oldest_kept: int) -> Obj:
    event = log.get(event_id)
    if event is None or int(event["created"]) < oldest_kept:
        raise StripeError(404, f"No such event: '{event_id}'", code="resource_missing", param="id")
    return event
