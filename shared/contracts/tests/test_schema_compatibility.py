"""The schemas' backward-compatibility check: what breaks a consumer fails, what only adds passes."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from contracts.schema import SCHEMAS_DIR, committed, incompatibilities, schemas
from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[3]


class Kind(StrEnum):
    A = "a"
    B = "b"


class KindPlus(StrEnum):
    A = "a"
    B = "b"
    C = "c"


class KindLess(StrEnum):
    A = "a"


class Before(BaseModel):
    event_id: str
    amount: int
    kind: Kind
    note: str | None = None


class AddsOptional(BaseModel):
    event_id: str
    amount: int
    kind: KindPlus
    note: str | None = None
    channel: str | None = None


class AddsRequired(BaseModel):
    event_id: str
    amount: int
    kind: Kind
    note: str | None = None
    channel: str


class RemovesField(BaseModel):
    event_id: str
    kind: Kind
    note: str | None = None


class RetypesField(BaseModel):
    event_id: str
    amount: str
    kind: Kind
    note: str | None = None


class NarrowsEnum(BaseModel):
    event_id: str
    amount: int
    kind: KindLess
    note: str | None = None


class NoteNoLongerNull(BaseModel):
    event_id: str
    amount: int
    kind: Kind
    note: str = ""


def check(after: type[BaseModel]) -> list[str]:
    return incompatibilities({"Event": Before.model_json_schema()}, {"Event": after.model_json_schema()})


def test_adding_an_optional_field_or_an_enum_value_is_compatible() -> None:
    assert check(AddsOptional) == []
    assert incompatibilities({}, {"Event": Before.model_json_schema()}) == []


def test_removing_or_retyping_a_field_is_caught() -> None:
    assert check(RemovesField) == ["Event.amount: removed"]
    assert check(RetypesField) == ["Event.amount: type ['integer'] became ['string']"]


def test_a_new_required_field_a_removed_enum_value_a_lost_null_or_a_removed_model_is_caught() -> None:
    assert check(AddsRequired) == ["Event.channel: now required"]
    assert check(NarrowsEnum) == ["Event.kind: values ['b'] removed"]
    assert check(NoteNoLongerNull) == ["Event.note: alternative 1 (null) no longer accepted"]
    assert incompatibilities({"Event": Before.model_json_schema()}, {}) == ["Event: removed"]


def test_the_models_are_compatible_with_their_committed_schemas() -> None:
    directory = REPO_ROOT / SCHEMAS_DIR
    assert incompatibilities(committed(directory), schemas()) == []
    assert set(committed(directory)) <= set(schemas())
