"""Reading processor JSON defensively: optional fields, Unix times, currencies, nested ids."""

from __future__ import annotations

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


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def sequence(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None


_INTERVALS: Final = frozenset({"day", "week", "month", "year"})


def interval(value: object) -> Interval | None:
    """A billing interval unit, or ``None`` for anything else (e.g. ``not_applicable``)."""
    return cast(Interval, value) if value in _INTERVALS else None


def timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from Unix seconds; ``None`` when absent."""
    seconds = number(value)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


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
