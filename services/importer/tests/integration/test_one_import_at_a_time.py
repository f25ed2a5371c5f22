"""One import of a connection at a time, whoever asks: a second one waits for the first to end.

Before this rule, an older import finishing after a newer one deleted the newer one's past
cancellations (completion drops the cancellations other imports derived). These run ``python -m
importer`` on the real broker and store against the suite's fake Stripe.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.events import Processor
from devstack.settings import StackSecrets
from importer.domain.lifecycle import CANCELED_STATUSES
from importer_integration_kit import FakeProcessors, Importers, connect, request_import, trigger, wait_until
from pymongo.database import Database

pytestmark = pytest.mark.infra

IMPORT_TIMEOUT_S = 180.0


async def test_a_second_import_of_a_connection_waits_and_keeps_every_past_cancellation(
    importers: Importers,
    mongo_db: Database[dict[str, Any]],
    stack_secrets: StackSecrets,
    fake_processors: FakeProcessors,
    producer: AIOKafkaProducer,
    kafka_events: Any,
) -> None:
    canceled = {
        str(subscription["id"])
        for subscription in fake_processors.served(Processor.STRIPE)["subscriptions"]
        if subscription["status"] in CANCELED_STATUSES
    }
    fake_processors.set_latency(0.3)  # slow pages: the first import is surely under way
    try:
        importers.start(STRIPE_TEST_CHAINS_PER_RESOURCE="1", STRIPE_TEST_IMPORT_CHAINS="2")
        connection = connect(mongo_db, stack_secrets, Processor.STRIPE)
        imports = await kafka_events(topics.IMPORTS)
        older = await trigger(producer, connection)
        await imports.wait_for(
            lambda e: e.type == "ImportStarted" and e.value["import_id"] == older, timeout_s=IMPORT_TIMEOUT_S
        )
        # Straight onto Kafka, past the connector's own refusal: the importer keeps the rule too.
        newer = await request_import(producer, connection)
        waiting = await wait_until(lambda: mongo_db.imports.find_one({"_id": newer}), timeout_s=60)
        first = mongo_db.imports.find_one({"_id": older})
        assert first is not None
        assert first["status"] == "running"
        assert waiting["status"] == "queued"
        assert mongo_db.import_pages.count_documents({"import_id": newer, "status": "done"}) == 0
    finally:
        fake_processors.set_latency(None)

    outcomes = await imports.wait_for(
        lambda e: e.type in {"ImportCompleted", "ImportFailed"} and e.value["import_id"] in {older, newer},
        count=2,
        timeout_s=2 * IMPORT_TIMEOUT_S,
    )

    assert [(e.type, e.value["import_id"]) for e in outcomes] == [
        ("ImportCompleted", older),
        ("ImportCompleted", newer),
    ]
    first, second = mongo_db.imports.find_one({"_id": older}), mongo_db.imports.find_one({"_id": newer})
    assert first is not None
    assert second is not None
    assert second["started_at"] >= first["finished_at"]  # never ran together
    assert "connection_slot" not in first
    assert "connection_slot" not in second
    stored = list(mongo_db.cancellations.find({"account_id": connection.account_id}))
    assert {document["object_id"] for document in stored} == canceled
    assert {document["import_id"] for document in stored} == {newer}
    assert outcomes[1].value["past_cancellations"] == len(canceled)
