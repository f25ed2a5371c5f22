"""JSON schemas of every event and canonical record: ``python -m contracts.schema [OUT_DIR]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts.events import (
    CONNECTION_EVENTS,
    IMPORT_EVENTS,
    NOTIFICATION_EVENTS,
    ONBOARDING_REQUEST_EVENTS,
)
from contracts.records import RECORD_TYPES

EVENT_TYPES: tuple[type[BaseModel], ...] = (
    *ONBOARDING_REQUEST_EVENTS.types,
    *CONNECTION_EVENTS.types,
    *IMPORT_EVENTS.types,
    *NOTIFICATION_EVENTS.types,
)


def schemas() -> dict[str, dict[str, Any]]:
    """Every public model's JSON schema, by model name."""
    return {model.__name__: model.model_json_schema() for model in (*EVENT_TYPES, *RECORD_TYPES)}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/schemas")
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (out / f"{name}.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
