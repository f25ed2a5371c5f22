"""Reading processor JSON defensively: optional fields, Unix times, currencies, nested ids."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, cast

from contracts.records import Interval

from importer.domain.source import RawObject


class MalformedObject(ValueError):
    """A processor object that cannot become a canonical record (a required field is missing)."""

    def __init__(self, resource: str, object_id: object, reason: str) -> None:
        super().__init__(f"{resource} {object_id!r}: {reason}")
        self.resource = resource
        self.object_id = object_id
        self.reason = reason


class OutOfRange(ValueError):
    """A number the processor sent that no record can hold (beyond 64-bit, not finite, no date)."""


#: MongoDB stores integers in 64 bits; amounts in minor units beyond that are not real.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def sequence(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def integer(value: object) -> int | None:
    """A whole number that fits 64 bits; :class:`OutOfRange` for one that does not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        finite = number(value)  # an infinite or NaN amount is out of range, not absent
        if finite is None or not finite.is_integer():
            return None
        value = int(finite)
    if not isinstance(value, int):
        return None
    if not INT64_MIN <= value <= INT64_MAX:
        raise OutOfRange(f"{value} is out of range")
    return value


def number(value: object) -> float | None:
    """A finite number; :class:`OutOfRange` for an infinite, NaN or unrepresentable one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        converted = float(value)
    except OverflowError as error:
        raise OutOfRange("a number is out of range") from error
    if not math.isfinite(converted):
        raise OutOfRange(f"{value} is out of range")
    return converted


_INTERVALS: Final = frozenset({"day", "week", "month", "year"})


def interval(value: object) -> Interval | None:
    """A billing interval unit, or ``None`` for anything else (e.g. ``not_applicable``)."""
    # Only a string can be one (an object or a list where a unit should be is not, and is unhashable).
    return cast(Interval, value) if isinstance(value, str) and value in _INTERVALS else None


def timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from Unix seconds; ``None`` when absent."""
    seconds = number(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise OutOfRange(f"time {value} is out of range") from error


def currency(value: object) -> str | None:
    code = text(value)
    return code.upper() if code is not None and len(code) == 3 and code.isalpha() else None


def object_id(value: object) -> str | None:
    """An id given either as a string or as the expanded object carrying it."""
    if isinstance(value, str):
        return text(value)
    return text(mapping(value).get("id"))


def required_id(resource: str, raw: RawObject) -> str:
    found = text(raw.get("id"))
    if found is None:
        raise MalformedObject(resource, raw.get("id"), "no id")
    return found
