"""The committed API documents are what the services generate: a changed route or event shows up."""

import json
from pathlib import Path

import pytest
from devstack.apidocs import DOCS_DIR, SERVICES, documents, stale_documents


def test_every_committed_api_document_is_up_to_date() -> None:
    assert stale_documents() == [], "run scripts/api-docs and commit docs/api/"


def test_a_stale_document_is_noticed(tmp_path: Path) -> None:
    for service in SERVICES:
        for name, text in documents(service).items():
            (tmp_path / name).write_text(text)
    edited = tmp_path / "notifier.asyncapi.json"
    document = json.loads(edited.read_text())
    document["info"]["version"] = "0.0.0-edited"
    edited.write_text(json.dumps(document))

    assert stale_documents(tmp_path) == ["notifier.asyncapi.json"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_asyncapi_document_describes_the_events_of_each_consumed_topic(service: str) -> None:
    document = json.loads((DOCS_DIR / f"{service}.asyncapi.json").read_text())
    schemas = document["components"]["schemas"]
    for channel in document["channels"].values():
        for reference in channel["messages"].values():
            message = document["components"]["messages"][reference["$ref"].rsplit("/", 1)[-1]]
            assert message["payload"] != {"$ref": "#/components/schemas/EmptyPayload"}, channel["address"]
    assert "EmptyPayload" not in schemas
