"""Stripe list endpoints: query parsing, filters, cursor pagination and `expand[]`.

Lists are newest first: `created` descending, ties broken by `id` descending.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.collection import Collection, Obj, Page, SortKey
from sandbox.fake_stripe.errors import StripeError

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
SUBSCRIPTION_STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
ID_PREFIX_RESOURCE = {
    "cus_": "customers",
    "sub_": "subscriptions",
    "in_": "invoices",
    "prod_": "products",
    "price_": "prices",
}
_CREATED_OP = re.compile(r"created\[(gt|gte|lt|lte)\]")
_RANGE_OP = re.compile(r"(\w+)\[(gt|gte|lt|lte)\]")
_EXPAND = re.compile(r"expand\[\d*\]")

Check = Callable[[Obj], bool]


@dataclass(frozen=True)
class ListSpec:
    """A list endpoint: its object name and the filters it accepts (param → field path)."""

    object_name: str
    filters: dict[str, str] = field(default_factory=dict)
    bool_filters: frozenset[str] = frozenset()
    range_filters: tuple[str, ...] = ()
    deletable: bool = False


LISTS: dict[str, ListSpec] = {
    "customers": ListSpec("customer", {"email": "email", "test_clock": "test_clock"}, deletable=True),
    "products": ListSpec(
        "product",
        {"active": "active", "shippable": "shippable", "url": "url", "type": "type"},
        frozenset({"active", "shippable"}),
        deletable=True,
    ),
    "prices": ListSpec(
        "price",
        {
            "active": "active",
            "currency": "currency",
            "product": "product",
            "type": "type",
            "recurring[interval]": "recurring.interval",
            "recurring[usage_type]": "recurring.usage_type",
        },
        frozenset({"active"}),
    ),
    "plans": ListSpec(
        "plan", {"active": "active", "product": "product"}, frozenset({"active"}), deletable=True
    ),
    "coupons": ListSpec("coupon", deletable=True),
    "subscriptions": ListSpec(
        "subscription",
        {
            "customer": "customer",
            "price": "items.data.price.id",
            "collection_method": "collection_method",
            "test_clock": "test_clock",
            "automatic_tax[enabled]": "automatic_tax.enabled",
        },
        frozenset({"automatic_tax[enabled]"}),
        ("current_period_start", "current_period_end"),
    ),
    "invoices": ListSpec(
        "invoice",
        {"customer": "customer", "subscription": "subscription", "collection_method": "collection_method"},
        range_filters=("due_date",),
    ),
}


@dataclass
class Paging:
    """What every Stripe list (objects or events) takes: a page size, a cursor, a creation window."""

    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None
    created: dict[str, int] = field(default_factory=dict)


@dataclass
class ListQuery(Paging):
    equals: dict[str, str] = field(default_factory=dict)
    ranges: list[tuple[str, str, int]] = field(default_factory=list)
    status: str | None = None
    expand: list[str] = field(default_factory=list)


def parse_int(value: str, param: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", param=param) from None


def _parse_limit(value: str) -> int:
    limit = parse_int(value, "limit")
    if limit < 1:
        raise StripeError(400, "This value must be greater than or equal to 1.", param="limit")
    if limit > MAX_LIMIT:
        raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
    return limit


def _parse_status(resource: str, value: str) -> str:
    allowed = SUBSCRIPTION_STATUSES if resource == "subscriptions" else INVOICE_STATUSES
    if value not in allowed:
        choices = f"{', '.join(allowed[:-1])}, or {allowed[-1]}"
        raise StripeError(400, f"Invalid status: must be one of {choices}", param="status")
    return value


def parse_paging(query: Paging, name: str, value: str) -> bool:
    """Read ``name`` into ``query`` if it is a paging parameter; whether it was."""
    if name == "limit":
        query.limit = _parse_limit(value)
    elif name == "starting_after":
        query.starting_after = value
    elif name == "ending_before":
        query.ending_before = value
    elif name == "created":
        query.created["gte"] = query.created["lte"] = parse_int(value, "created")
    elif (created := _CREATED_OP.fullmatch(name)) is not None:
        query.created[created.group(1)] = parse_int(value, name)
    else:
        return False
    return True


def _parse_param(query: ListQuery, resource: str, spec: ListSpec, name: str, value: str) -> None:
    if parse_paging(query, name, value):
        return
    if _EXPAND.fullmatch(name):
        query.expand.append(value)
    elif name == "status" and resource in ("subscriptions", "invoices"):
        query.status = _parse_status(resource, value)
    elif name in spec.filters:
        query.equals[name] = value
    elif (ranged := _RANGE_OP.fullmatch(name)) and ranged.group(1) in spec.range_filters:
        query.ranges.append((ranged.group(1), ranged.group(2), parse_int(value, name)))
    else:
        raise StripeError(400, f"Received unknown parameter: {name}", param=name)


def parse_list_query(resource: str, params: Iterable[tuple[str, str]]) -> ListQuery:
    """Read a list request's query like Stripe: unknown parameters are refused."""
    spec = LISTS[resource]
    query = ListQuery()
    for name, value in params:
        _parse_param(query, resource, spec, name, value)
    if query.starting_after and query.ending_before:
        raise StripeError(400, "You may only specify one of these parameters: ending_before, starting_after.")
    return query


def get_path(obj: Any, path: str) -> Any:
    """Value at a dotted path; a list on the way yields the list of values (`items.data.price.id`)."""
    value: Any = obj
    for part in path.split("."):
        if isinstance(value, list):
            return [get_path(v, part) for v in value]
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _equals(path: str, expected: Any) -> Check:
    def check(obj: Obj) -> bool:
        found = get_path(obj, path)
        return expected in found if isinstance(found, list) else found == expected

    return check


def _in_range(fld: str, op: str, bound: int) -> Check:
    def check(obj: Obj) -> bool:
        value = obj.get(fld)
        if value is None:
            return False
        number = int(value)
        return {"gt": number > bound, "gte": number >= bound, "lt": number < bound, "lte": number <= bound}[
            op
        ]

    return check


def _status_in(statuses: frozenset[str]) -> Check:
    return lambda obj: obj.get("status") in statuses


def _status_not(status: str) -> Check:
    return lambda obj: obj.get("status") != status


def build_filter(resource: str, query: ListQuery) -> tuple[Check | None, Any]:
    """The filter for a query and a hashable key naming it (for the collection's view cache)."""
    spec = LISTS[resource]
    checks: list[Check] = []
    for param, raw in sorted(query.equals.items()):
        expected: Any = raw
        if param in spec.bool_filters:
            if raw not in ("true", "false"):
                raise StripeError(400, f"Invalid boolean: {raw}", param=param)
            expected = raw == "true"
        checks.append(_equals(spec.filters[param], expected))
    checks.extend(_in_range(fld, op, bound) for fld, op, bound in query.ranges)
    status_key = query.status
    if resource == "subscriptions" and query.status is None:
        checks.append(_status_not("canceled"))  # Stripe leaves canceled ones out unless asked
        status_key = "default"
    elif query.status == "ended":
        checks.append(_status_in(frozenset({"canceled", "incomplete_expired"})))
    elif query.status is not None and query.status != "all":
        checks.append(_status_in(frozenset({query.status})))
    if not checks:
        return None, None
    key = (tuple(sorted(query.equals.items())), tuple(query.ranges), status_key)
    return (lambda obj: all(check(obj) for check in checks)), key


def _cursor_key(collection: Collection, spec: ListSpec, object_id: str, param: str) -> SortKey:
    key = collection.key_of(object_id, "created")
    if key is None:
        raise StripeError(
            400, f"No such {spec.object_name}: '{object_id}'", code="resource_missing", param=param
        )
    return key


def list_page(resource: str, collection: Collection, query: ListQuery) -> Page:
    """One page, newest first, in O(limit + log n) once the filter's view exists."""
    spec = LISTS[resource]
    predicate, filter_key = build_filter(resource, query)
    view = collection.view("created", filter_key, predicate)
    c = query.created
    lo, hi = view.bounds(gt=c.get("gt"), gte=c.get("gte"), lt=c.get("lt"), lte=c.get("lte"))
    if query.starting_after is not None:
        key = _cursor_key(collection, spec, query.starting_after, "starting_after")
        return view.descending(lo, max(lo, min(hi, view.position_before(key))), query.limit)
    if query.ending_before is not None:
        key = _cursor_key(collection, spec, query.ending_before, "ending_before")
        page = view.ascending(min(hi, max(lo, view.position_after(key))), hi, query.limit)
        return Page(page.items[::-1], page.has_more)
    return view.descending(lo, hi, query.limit)


Resolver = Callable[[str], Obj | None]


def resolver_for(collections: Mapping[str, Collection]) -> Resolver:
    def resolve(object_id: str) -> Obj | None:
        for prefix, resource in ID_PREFIX_RESOURCE.items():
            if object_id.startswith(prefix):
                return collections[resource].get(object_id)
        return None

    return resolve


def expand(obj: Obj, paths: Iterable[str], resolve: Resolver, *, in_list: bool) -> Obj:
    """Replace ids by objects along each path (`data.customer` in a list, `customer` otherwise)."""
    out = obj
    for path in paths:
        parts = path.split(".")
        if in_list and parts[:1] == ["data"]:
            parts = parts[1:]
        out = _expand_path(out, parts, resolve)
    return out


def _expand_path(obj: Obj, parts: list[str], resolve: Resolver) -> Obj:
    if not parts:
        return obj
    head, rest = parts[0], parts[1:]
    value = obj.get(head)
    out = copy.copy(obj)
    if rest and isinstance(value, dict):
        if value.get("object") == "list" and rest[0] == "data":
            items = [_expand_path(item, rest[1:], resolve) for item in value.get("data", [])]
            out[head] = {**value, "data": items}
        else:
            out[head] = _expand_path(value, rest, resolve)
    elif head == "discounts" and isinstance(value, list):
        discount = obj.get("discount")
        out[head] = [discount if isinstance(discount, dict) and discount.get("id") == d else d for d in value]
    elif isinstance(value, str):
        resolved = resolve(value)
        if resolved is not None:
            out[head] = _expand_path(resolved, rest, resolve)
    return out
