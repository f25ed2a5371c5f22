"""The API documents of a service: OpenAPI from its FastAPI app, AsyncAPI from its faststream broker.

``python -m <service>.apidocs`` prints both; ``scripts/api-docs`` writes them under ``docs/api/`` and
the test suite checks the committed copies are up to date.
"""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic.json_schema import models_json_schema

from contracts.runtime.kafka import subscribed_messages

SCHEMAS_REF = "#/components/schemas/{model}"
KAFKA_BINDING_VERSION: Final = "0.4.0"


def asyncapi_document(
    broker: KafkaBroker,
    *,
    title: str,
    version: str,
    description: str,
) -> dict[str, Any]:
    """AsyncAPI 3.0 of ``broker``, each consumed channel's payload being the messages of its topic.

    Every ``receive`` operation names its consumer group (the Kafka operation binding's ``groupId``):
    the document says all a service reads and writes, which is what its Kafka ACLs are checked against.
    """
    specification = AsyncAPI(
        broker, title=title, version=version, description=description, schema_version="3.0.0"
    ).to_specification()
    document: dict[str, Any] = specification.to_jsonable()
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    messages: dict[str, Any] = components.setdefault("messages", {})
    for channel in document.get("channels", {}).values():
        models = subscribed_messages(broker).get(channel["address"])
        if not models:
            continue
        _, definitions = models_json_schema(
            [(model, "validation") for model in models], ref_template=SCHEMAS_REF
        )
        schemas.update(definitions.get("$defs", {}))
        for reference in channel.get("messages", {}).values():
            message = messages[reference["$ref"].rsplit("/", 1)[-1]]
            message["payload"] = {"oneOf": [{"$ref": SCHEMAS_REF.format(model=m.__name__)} for m in models]}
    _bind_consumer_groups(document, broker)
    if not any("EmptyPayload" in json.dumps(message) for message in messages.values()):
        schemas.pop("EmptyPayload", None)
    return document


def _bind_consumer_groups(document: dict[str, Any], broker: KafkaBroker) -> None:
    groups: dict[str, str] = {}
    for subscriber in broker.subscribers:
        group_id = getattr(subscriber, "group_id", None)
        for topic in getattr(subscriber, "topics", ()):
            name = getattr(topic, "name", topic)
            if group_id is not None:
                groups[str(name)] = str(group_id)
    channels = document.get("channels", {})
    for operation in document.get("operations", {}).values():
        if operation["action"] != "receive":
            continue
        address = channels[operation["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
        if address in groups:
            operation["bindings"] = {
                "kafka": {
                    "bindingVersion": KAFKA_BINDING_VERSION,
                    "groupId": {"type": "string", "enum": [groups[address]]},
                }
            }


def openapi_document(app: FastAPI) -> dict[str, Any]:
    document: dict[str, Any] = app.openapi()
    return document


def render(document: dict[str, Any]) -> str:
    """Stable text of a document: sorted keys, so a diff shows only real changes."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def print_documents(
    app: FastAPI,
    broker: KafkaBroker,
    *,
    title: str,
    version: str,
    description: str,
) -> None:
    """Both documents as one JSON object ``{"openapi": ..., "asyncapi": ...}`` on stdout."""
    asyncapi = asyncapi_document(broker, title=title, version=version, description=description)
    print(
        render({"openapi": openapi_document(app), "asyncapi": asyncapi}),
        end="",
    )
