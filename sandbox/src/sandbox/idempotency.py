"""Saved answers of idempotent POSTs, as both processors keep them: per key, with the parameters.

The same key with the same method, path and parameters replays the saved answer; with anything else
it is an error the caller names. Only answers of requests that started executing are saved (a
refused key or a throttled request is not), as Stripe documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SavedAnswer:
    fingerprint: str
    status: int
    body: dict[str, Any]


def fingerprint(method: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    """What must match for a replay: the request line and its parameters, order kept."""
    raw = json.dumps([method.upper(), path, list(params)], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


class IdempotencyKeys:
    """Saved answers per (scope, key); a scope is an account or a site."""

    def __init__(self) -> None:
        self._saved: dict[tuple[str, str], SavedAnswer] = {}

    def lookup(self, scope: str, key: str) -> SavedAnswer | None:
        return self._saved.get((scope, key))

    def save(self, scope: str, key: str, answer: SavedAnswer) -> None:
        self._saved[(scope, key)] = answer

    def clear(self) -> None:
        self._saved.clear()
