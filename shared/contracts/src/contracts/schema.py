"""JSON schemas of every event and canonical record, and their backward-compatibility check.

``python -m contracts.schema`` writes one schema per model into ``docs/schemas/``;
``python -m contracts.schema --check`` fails when a model changed incompatibly with its committed
schema: a model, field or enum value removed, a field retyped, or a new field made required. Adding
a model, an optional field or an enum value is compatible (a consumer of the committed schema still
reads every new message); rewrite the committed schemas after such a change with the first command.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from contracts import events
from contracts.events import TopicEvents
from contracts.records import RECORD_TYPES
from contracts.sync import CredentialsLost, ProcessorEventReceived

SCHEMAS_DIR: Final = Path("docs/schemas")

Schema = Mapping[str, Any]


def published_models() -> tuple[type[BaseModel], ...]:
    """Every event of every topic (each ``TopicEvents`` of :mod:`contracts.events`), the internal
    sync event and credentials report, and every canonical record."""
    event_types = [
        model for value in vars(events).values() if isinstance(value, TopicEvents) for model in value.types
    ]
    models: list[type[BaseModel]] = [*event_types, ProcessorEventReceived, CredentialsLost, *RECORD_TYPES]
    unique: dict[type[BaseModel], None] = dict.fromkeys(models)
    return tuple(unique)


def schemas() -> dict[str, dict[str, Any]]:
    """Every published model's JSON schema, by model name."""
    return {model.__name__: model.model_json_schema() for model in published_models()}


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def committed(directory: Path) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def incompatibilities(old: Mapping[str, Schema], new: Mapping[str, Schema]) -> list[str]:
    """Why messages valid under ``new`` may break a consumer written against ``old`` (empty: none)."""
    problems: list[str] = []
    for name, old_schema in sorted(old.items()):
        if name not in new:
            problems.append(f"{name}: removed")
            continue
        problems += _compare(name, old_schema, new[name], old_schema, new[name])
    return problems


def _resolve(schema: Schema, root: Schema) -> Schema:
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
        return schema
    resolved: Schema = root.get("$defs", {})[reference.removeprefix("#/$defs/")]
    return {**resolved, **{k: v for k, v in schema.items() if k != "$ref"}}


def _types(schema: Schema) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return set()
    return {kind} if isinstance(kind, str) else set(kind)


def _compare(path: str, old: Schema, new: Schema, old_root: Schema, new_root: Schema) -> list[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    problems: list[str] = []
    old_alternatives = old.get("anyOf") or old.get("oneOf")
    new_alternatives = new.get("anyOf") or new.get("oneOf")
    if old_alternatives or new_alternatives:
        for index, alternative in enumerate(old_alternatives or [old]):
            if not any(
                not _compare(path, alternative, candidate, old_root, new_root)
                for candidate in (new_alternatives or [new])
            ):
                problems.append(f"{path}: alternative {index} ({_describe(alternative)}) no longer accepted")
        return problems
    if not _types(old) <= _types(new) and _types(new) != {"number"} | _types(old) - {"integer"}:
        problems.append(f"{path}: type {sorted(_types(old))} became {sorted(_types(new))}")
    for keyword in ("format", "const"):
        if old.get(keyword) != new.get(keyword):
            problems.append(f"{path}: {keyword} {old.get(keyword)!r} became {new.get(keyword)!r}")
    if "enum" in old:
        removed = [value for value in old["enum"] if value not in new.get("enum", old["enum"])]
        if removed:
            problems.append(f"{path}: values {removed} removed")
    old_properties: Mapping[str, Schema] = old.get("properties", {})
    new_properties: Mapping[str, Schema] = new.get("properties", {})
    for field, old_field in old_properties.items():
        if field not in new_properties:
            problems.append(f"{path}.{field}: removed")
            continue
        problems += _compare(f"{path}.{field}", old_field, new_properties[field], old_root, new_root)
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    problems += [f"{path}.{field}: now required" for field in sorted(newly_required)]
    if "items" in old and "items" in new:
        problems += _compare(f"{path}[]", old["items"], new["items"], old_root, new_root)
    return problems


def _describe(schema: Schema) -> str:
    return str(schema.get("$ref") or schema.get("type") or schema.get("const") or "schema")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", nargs="?", type=Path, default=SCHEMAS_DIR)
    parser.add_argument(
        "--check", action="store_true", help="fail on a change incompatible with the committed schemas"
    )
    args = parser.parse_args(argv)
    current = schemas()
    if args.check:
        problems = incompatibilities(committed(args.directory), current)
        for problem in problems:
            print(f"incompatible: {problem}")
        if not problems:
            stale = sorted(
                name for name, schema in current.items() if committed(args.directory).get(name) != schema
            )
            print(
                f"schemas compatible with {args.directory}"
                + (f"; to refresh: {', '.join(stale)}" if stale else "")
            )
        return 1 if problems else 0
    args.directory.mkdir(parents=True, exist_ok=True)
    for name, schema in current.items():
        (args.directory / f"{name}.json").write_text(render(schema))
    print(f"wrote {len(current)} schemas into {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
