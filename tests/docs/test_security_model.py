"""docs/security.md lists every route of the services' OpenAPI documents, each with the guard declared."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
ACCOUNT_TOKEN = "account token"
_ROW = re.compile(
    r"^\| (connector|importer|notifier) \| `(GET|POST|PUT|PATCH|DELETE) ([^`]+)` \| [^|]+ \| ([^|]+) \|$"
)


def documented_routes(text: str) -> dict[tuple[str, str, str], str]:
    """(service, method, path) → what proves the caller, from the model's route table."""
    routes: dict[tuple[str, str, str], str] = {}
    for line in text.splitlines():
        if match := _ROW.match(line.strip()):
            service, method, path, proof = match.groups()
            routes[(service, method, path)] = proof.strip()
    return routes


def declared_routes() -> dict[tuple[str, str, str], bool]:
    """(service, method, path) → whether the OpenAPI document guards it with the account token."""
    routes: dict[tuple[str, str, str], bool] = {}
    for service in ("connector", "importer", "notifier"):
        document = json.loads((DOCS / "api" / f"{service}.openapi.json").read_text())
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                guarded = operation.get("security") == [{"AccountToken": []}]
                routes[(service, method.upper(), path)] = guarded
    return routes


def test_every_route_is_in_the_threat_model_with_the_guard_its_document_declares() -> None:
    documented = documented_routes((DOCS / "security.md").read_text())
    declared = declared_routes()

    assert set(documented) == set(declared)
    for route, guarded in declared.items():
        assert (documented[route] == ACCOUNT_TOKEN) == guarded, route


def test_a_route_missing_from_the_model_or_with_the_wrong_guard_is_noticed() -> None:
    text = (DOCS / "security.md").read_text()
    row = "| importer | `GET /v1/accounts/{account_id}/cancellations` | the account | account token |"
    assert row in text
    documented = documented_routes(text.replace(row, ""))
    assert set(documented) != set(declared_routes())
    weakened = documented_routes(text.replace(row, row.replace("account token", "nothing")))
    assert weakened[("importer", "GET", "/v1/accounts/{account_id}/cancellations")] != ACCOUNT_TOKEN
