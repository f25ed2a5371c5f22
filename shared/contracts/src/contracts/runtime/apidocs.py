"""The API documents of a service: OpenAPI from its FastAPI app, AsyncAPI from its faststream broker.

``python -m <service>.apidocs`` prints both; ``scripts/api-docs`` writes them under ``docs/api/`` and
the test suite checks the committed copies are up to date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.runtime.kafka import subscribed_events

SCHEMAS_REF = "#/components/schemas/{model}"
KAFKA_BINDING_VERSION: Final = "0.4.0"


@dataclass(frozen=True)
class OwnConsumer:
    """A topic a service consumes with a Kafka client of its own, beside its faststream broker."""

    topic: str
    group_id: str
    messages: Sequence[type[BaseModel]]


def asyncapi_document(
    broker: KafkaBroker,
    *,
    title: str,
    version: str,
    description: str,
    own_consumers: Sequence[OwnConsumer] = (),
) -> dict[str, Any]:
    """AsyncAPI 3.0 of ``broker``, each consumed channel's payload being the events of its topic.

    Every ``receive`` operation names its consumer group (the Kafka operation binding's ``groupId``),
    and the topics consumed outside the broker (``own_consumers``) are documented like the others: the
    document says all a service reads and writes, which is what its Kafka ACLs are checked against.
    """
    specification = AsyncAPI(
        broker, title=title, version=version, description=description, schema_version="3.0.0"
    ).to_specification()
    document: dict[str, Any] = specification.to_jsonable()
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    messages: dict[str, Any] = components.setdefault("messages", {})
    for channel in document.get("channels", {}).values():
        events = subscribed_events(broker).get(channel["address"])
        if events is None:
            continue
        _, definitions = models_json_schema(
            [(model, "validation") for model in events.types], ref_template=SCHEMAS_REF
        )
        schemas.update(definitions.get("$defs", {}))
        for reference in channel.get("messages", {}).values():
            message = messages[reference["$ref"].rsplit("/", 1)[-1]]
            message["payload"] = {
                "oneOf": [{"$ref": SCHEMAS_REF.format(model=m.__name__)} for m in events.types]
            }
    for consumer in own_consumers:
        _add_own_consumer(document, consumer)
    _bind_consumer_groups(document, broker, own_consumers)
    if not any("EmptyPayload" in json.dumps(message) for message in messages.values()):
        schemas.pop("EmptyPayload", None)
    return document


def _add_own_consumer(document: dict[str, Any], consumer: OwnConsumer) -> None:
    key = f"{consumer.topic}:Consume"
    message_key = f"{key}:SubscribeMessage"
    _, definitions = models_json_schema(
        [(model, "validation") for model in consumer.messages], ref_template=SCHEMAS_REF
    )
    document["components"]["schemas"].update(definitions.get("$defs", {}))
    document["components"]["messages"][message_key] = {
        "title": message_key,
        "payload": {"oneOf": [{"$ref": SCHEMAS_REF.format(model=m.__name__)} for m in consumer.messages]},
    }
    document.setdefault("channels", {})[key] = {
        "address": consumer.topic,
        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION, "topic": consumer.topic}},
        "description": ", ".join(m.__name__ for m in consumer.messages) + f" from {consumer.topic}",
        "messages": {"SubscribeMessage": {"$ref": f"#/components/messages/{message_key}"}},
        "servers": [{"$ref": f"#/servers/{server}"} for server in document.get("servers", {})],
    }
    document.setdefault("operations", {})[f"{key}Subscribe"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/SubscribeMessage"}],
    }


def _bind_consumer_groups(
    document: dict[str, Any], broker: KafkaBroker, own_consumers: Sequence[OwnConsumer]
) -> None:
    groups: dict[str, str] = {consumer.topic: consumer.group_id for consumer in own_consumers}
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
    own_consumers: Sequence[OwnConsumer] = (),
) -> None:
    """Both documents as one JSON object ``{"openapi": ..., "asyncapi": ...}`` on stdout."""
    asyncapi = asyncapi_document(
        broker, title=title, version=version, description=description, own_consumers=own_consumers
    )
    print(
        render({"openapi": openapi_document(app), "asyncapi": asyncapi}),
        end="",
    )
