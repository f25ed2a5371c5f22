"""Chargebee list endpoints: `limit`/`offset`, `sort_by[asc|desc]`, `attr[op]=value` filters.

Offsets are opaque to clients; ours encode the last returned object's sort key, so a listing
survives deletions between pages. Timestamp filters on the sort field use the sorted view's
bisect; every other filter selects a cached view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.collection import Collection, Obj, Page, SortKey
from sandbox.fake_chargebee.errors import wrong_value

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DAY_S = 86_400
_FILTER = re.compile(r"(\w+)\[(\w+)\]")
Check = Callable[[Obj], bool]

STRING_OPS = frozenset({"is", "is_not", "starts_with", "in", "not_in", "is_present"})
ENUM_OPS = frozenset({"is", "is_not", "in", "not_in", "is_present"})
TIMESTAMP_OPS = frozenset({"after", "before", "on", "between", "is_present"})
NUMBER_OPS = frozenset({"is", "is_not", "lt", "lte", "gt", "gte", "between", "is_present"})
BOOLEAN_OPS = frozenset({"is"})
OPS_BY_KIND = {
    "string": STRING_OPS,
    "enum": ENUM_OPS,
    "timestamp": TIMESTAMP_OPS,
    "number": NUMBER_OPS,
    "boolean": BOOLEAN_OPS,
}


@dataclass(frozen=True)
class ResourceSpec:
    """A Chargebee list: entry key, catalog it belongs to, sortable and filterable attributes."""

    name: str
    object_name: str
    default_sort: str
    sort_fields: tuple[str, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)
    """attribute → kind (string, enum, timestamp, number, boolean); dotted paths reach into lists."""
    catalog: str | None = None
    include_deleted: bool = False
    paths: dict[str, str] = field(default_factory=dict)
    """Filter attributes stored elsewhere in the object (attribute → dotted path)."""

    @property
    def all_sort_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.default_sort, *self.sort_fields)))


def _kinds(kind: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, kind)


RESOURCES: dict[str, ResourceSpec] = {
    spec.name: spec
    for spec in (
        ResourceSpec(
            "customers",
            "customer",
            "created_at",
            ("created_at", "updated_at"),
            {
                **_kinds("string", "id", "first_name", "last_name", "email", "company", "phone"),
                **_kinds("string", "business_entity_id"),
                **_kinds("enum", "auto_collection", "taxability", "channel", "offline_payment_method"),
                **_kinds("timestamp", "created_at", "updated_at"),
                "auto_close_invoices": "boolean",
            },
            include_deleted=True,
        ),
        ResourceSpec(
            "subscriptions",
            "subscription",
            "created_at",
            ("created_at", "updated_at"),
            {
                **_kinds("string", "id", "customer_id", "plan_id", "item_price_id", "cancel_reason_code"),
                **_kinds("enum", "status", "cancel_reason", "channel", "offline_payment_method"),
                **_kinds("timestamp", "created_at", "activated_at", "next_billing_at", "cancelled_at"),
                "updated_at": "timestamp",
                "remaining_billing_cycles": "number",
                "has_scheduled_changes": "boolean",
            },
            include_deleted=True,
            paths={"item_price_id": "subscription_items.item_price_id"},
        ),
        ResourceSpec(
            "invoices",
            "invoice",
            "date",
            ("date", "updated_at"),
            {
                **_kinds("string", "id", "subscription_id", "customer_id", "void_reason_code"),
                **_kinds("enum", "status", "price_type", "dunning_status", "channel"),
                **_kinds("timestamp", "date", "paid_at", "updated_at", "voided_at"),
                **_kinds(
                    "number", "total", "amount_paid", "amount_adjusted", "credits_applied", "amount_due"
                ),
                "recurring": "boolean",
            },
            include_deleted=True,
        ),
        ResourceSpec(
            "coupons",
            "coupon",
            "created_at",
            ("created_at",),
            {
                **_kinds("string", "id", "name", "currency_code"),
                **_kinds("enum", "discount_type", "duration_type", "status", "apply_on"),
                **_kinds("timestamp", "created_at", "updated_at"),
            },
        ),
        ResourceSpec(
            "plans",
            "plan",
            "updated_at",
            (),
            {
                **_kinds("string", "id", "name", "currency_code"),
                **_kinds("number", "price", "period", "trial_period"),
                **_kinds("enum", "period_unit", "trial_period_unit", "addon_applicability", "status"),
                **_kinds("enum", "charge_model", "pricing_model", "channel"),
                "giftable": "boolean",
                "updated_at": "timestamp",
            },
            catalog="1.0",
            include_deleted=True,
        ),
        ResourceSpec(
            "addons",
            "addon",
            "updated_at",
            (),
            {
                **_kinds("string", "id", "name", "currency_code"),
                **_kinds("number", "price", "period"),
                **_kinds("enum", "pricing_model", "type", "charge_type", "period_unit", "status", "channel"),
                "updated_at": "timestamp",
            },
            catalog="1.0",
            include_deleted=True,
        ),
        ResourceSpec(
            "items",
            "item",
            "updated_at",
            ("name", "id", "updated_at"),
            {
                **_kinds("string", "id", "item_family_id", "name"),
                **_kinds("enum", "type", "item_applicability", "status", "usage_calculation", "channel"),
                **_kinds("boolean", "is_giftable", "enabled_for_checkout", "enabled_in_portal", "metered"),
                "updated_at": "timestamp",
            },
            catalog="2.0",
        ),
        ResourceSpec(
            "item_prices",
            "item_price",
            "updated_at",
            ("name", "id", "updated_at"),
            {
                **_kinds("string", "id", "name", "item_id", "item_family_id", "currency_code"),
                **_kinds("enum", "pricing_model", "item_type", "trial_period_unit", "status", "period_unit"),
                **_kinds("number", "trial_period", "period"),
                "channel": "enum",
                "updated_at": "timestamp",
            },
            catalog="2.0",
        ),
    )
}
TIMESTAMP_SORTS = frozenset({"created_at", "updated_at", "date"})


@dataclass
class ListQuery:
    limit: int = DEFAULT_LIMIT
    offset: str | None = None
    sort_field: str = ""
    descending: bool = True
    include_deleted: bool = False
    filters: list[tuple[str, str, str]] = field(default_factory=list)
    """(attribute, operator, raw value) in request order."""


def _parse_limit(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        raise wrong_value("limit", f"invalid integer value {value!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise wrong_value("limit", f"The value {limit} is invalid. Value should be between 1 and {MAX_LIMIT}")
    return limit


def _parse_bool(param: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise wrong_value(param, f"invalid boolean value {value!r}")
    return value == "true"


def _parse_sort(query: ListQuery, spec: ResourceSpec, name: str, value: str) -> None:
    if query.sort_field:
        raise wrong_value(name, "only one sort_by parameter may be given")
    if value not in spec.sort_fields:
        allowed = ", ".join(spec.sort_fields) or "no attribute"
        raise wrong_value(name, f"sorting by {value!r} is not supported; supported: {allowed}")
    query.sort_field = value
    query.descending = name == "sort_by[desc]"


def parse_list_query(spec: ResourceSpec, params: Iterable[tuple[str, str]]) -> ListQuery:
    query = ListQuery()
    for name, value in params:
        if name == "limit":
            query.limit = _parse_limit(value)
        elif name == "offset":
            query.offset = value
        elif name in ("sort_by[asc]", "sort_by[desc]"):
            _parse_sort(query, spec, name, value)
        elif name == "include_deleted" and spec.include_deleted:
            query.include_deleted = _parse_bool(name, value)
        elif (match := _FILTER.fullmatch(name)) is not None and match.group(1) in spec.filters:
            attribute, op = match.group(1), match.group(2)
            if op not in OPS_BY_KIND[spec.filters[attribute]]:
                raise wrong_value(name, f"operator {op!r} is not supported for {attribute}")
            query.filters.append((attribute, op, value))
        else:
            raise wrong_value(name, "is not a supported parameter")
    query.sort_field = query.sort_field or spec.default_sort
    return query


def parse_list_value(param: str, value: str) -> list[str]:
    """`["a","b"]` (Chargebee's list syntax; `[a,b]` is accepted too)."""
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise wrong_value(param, f'expected a list like ["a","b"], got {value!r}')
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = [part.strip().strip("\"'") for part in text[1:-1].split(",") if part.strip()]
    if not isinstance(parsed, list):
        raise wrong_value(param, f"expected a list, got {value!r}")
    return [str(v) for v in parsed]


def _parse_number(param: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise wrong_value(param, f"invalid integer value {value!r}") from None


def get_path(obj: Any, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if isinstance(value, list):
            return [get_path(v, part) for v in value]
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _matches_any(found: Any, test: Callable[[Any], bool]) -> bool:
    if isinstance(found, list):
        return any(test(v) for v in found)
    return test(found)


def _range_bounds(param: str, op: str, value: str) -> tuple[int | None, int | None]:
    """Inclusive [low, high] for a timestamp or number comparison."""
    if op == "between":
        pair = [_parse_number(param, v) for v in parse_list_value(param, value)]
        if len(pair) != 2:
            raise wrong_value(param, "between needs exactly two values")
        return pair[0], pair[1]
    n = _parse_number(param, value)
    day = n - n % DAY_S
    bounds: dict[str, tuple[int | None, int | None]] = {
        "after": (n + 1, None),
        "gt": (n + 1, None),
        "before": (None, n - 1),
        "lt": (None, n - 1),
        "gte": (n, None),
        "lte": (None, n),
        "on": (day, day + DAY_S - 1),
    }
    return bounds.get(op, (n, n))  # is


def _within(low: int | None, high: int | None) -> Callable[[Any], bool]:
    return lambda v: v is not None and (low is None or v >= low) and (high is None or v <= high)


def _value_test(param: str, kind: str, op: str, value: str) -> Callable[[Any], bool]:
    """How one attribute value is tested (lists in the object match when any element does)."""
    if kind == "boolean":
        expected = _parse_bool(param, value)
        return lambda v: v is expected
    if kind in ("timestamp", "number") and op != "is_not":
        return _within(*_range_bounds(param, op, value))
    if op in ("in", "not_in"):
        allowed = set(parse_list_value(param, value))
        inside = op == "in"
        return lambda v: (str(v) in allowed) == inside
    if op == "starts_with":
        return lambda v: isinstance(v, str) and v.startswith(value)
    return lambda v: str(v) == value


def build_check(spec: ResourceSpec, attribute: str, op: str, value: str) -> Check:
    param = f"{attribute}[{op}]"
    path = spec.paths.get(attribute, attribute)
    if op == "is_present":
        present = _parse_bool(param, value)
        return lambda o: (get_path(o, path) not in (None, [])) == present
    test = _value_test(param, spec.filters[attribute], op, value)
    if op == "is_not":
        return lambda o: not _matches_any(get_path(o, path), test)
    return lambda o: _matches_any(get_path(o, path), test)


def encode_offset(key: SortKey) -> str:
    return json.dumps([str(key[0]), key[1]], separators=(",", ":"))


def decode_offset(value: str, sort_field: str) -> SortKey:
    try:
        raw = json.loads(value)
    except ValueError:
        raw = None
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(v, str) for v in raw)):
        raise wrong_value("offset", "The offset value is invalid")
    if sort_field not in TIMESTAMP_SORTS:
        return (raw[0], raw[1])
    try:
        return (int(raw[0]), raw[1])
    except ValueError:
        raise wrong_value("offset", "The offset value is invalid") from None


def list_page(spec: ResourceSpec, collection: Collection, query: ListQuery) -> tuple[Page, str | None]:
    """One page and the offset of the next one (None on the last page)."""
    checks: list[Check] = []
    view_key: list[tuple[str, str, str]] = []
    lo_bound: int | None = None
    hi_bound: int | None = None
    for attribute, op, value in query.filters:
        if attribute == query.sort_field and query.sort_field in TIMESTAMP_SORTS and op != "is_present":
            low, high = _range_bounds(f"{attribute}[{op}]", op, value)
            lo_bound = low if lo_bound is None or low is None else max(lo_bound, low)
            hi_bound = high if hi_bound is None or high is None else min(hi_bound, high)
            continue
        checks.append(build_check(spec, attribute, op, value))
        view_key.append((attribute, op, value))
    if spec.include_deleted and not query.include_deleted:
        checks.append(lambda o: not o.get("deleted", False))
    predicate: Check | None = (lambda o: all(c(o) for c in checks)) if checks else None
    view = collection.view(query.sort_field, (tuple(view_key), query.include_deleted), predicate)
    lo, hi = (
        view.bounds(gte=lo_bound, lte=hi_bound) if query.sort_field in TIMESTAMP_SORTS else (0, len(view))
    )
    if query.offset is not None:
        key = decode_offset(query.offset, query.sort_field)
        if query.descending:
            hi = max(lo, min(hi, view.position_before(key)))
        else:
            lo = min(hi, max(lo, view.position_after(key)))
    page = view.descending(lo, hi, query.limit) if query.descending else view.ascending(lo, hi, query.limit)
    next_offset = None
    if page.has_more and page.items:
        last = page.items[-1]
        next_offset = encode_offset((last.get(query.sort_field) or 0, str(last["id"])))
    return page, next_offset
