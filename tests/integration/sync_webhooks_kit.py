"""What the end-to-end tests of webhooks delivered badly share (Stripe's and Chargebee's): a
connection made through the real connector, imported and its sync live, read back from the store,
the ``billing.*`` topics (to their end before anything is said to be absent), the importer's log and
the sync state."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from contracts import topics
from contracts.records import CustomerRecord
from contracts.sync import SYNC_STATE_COLLECTION
from devstack.events import CollectedEvent, TopicCollector
from devstack.stack import ServiceStack
from pymongo.database import Database
from sandbox.client import SandboxAdmin

WAIT_S = 60.0
IMPORT_TIMEOUT_S = 120.0
#: The importer's poll after the import, then none while a test runs: only webhooks change records.
WEBHOOKS_ONLY = {"SYNC_INTERVAL_S": "600", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
#: The processor's event list read every second.
FAST_POLL = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}


@dataclass(frozen=True)
class SyncedConnection:
    """A connection made through the connector, imported, its sync live."""

    PROCESSOR: ClassVar[str]

    stack: ServiceStack
    account_id: str
    connection_id: str
    mongo_db: Database[dict[str, Any]]
    billing: TopicCollector
    billing_from: dict[tuple[str, int], int]
    """Where ``billing`` started reading (the end of each partition then)."""

    def key(self, object_id: str) -> str:
        return topics.billing_record_key(self.account_id, self.PROCESSOR, object_id)

    def stored(self, collection: str, object_id: str) -> Any:
        return self.mongo_db[collection].find_one({"_id": self.key(object_id)})

    async def read_to_end(self) -> None:
        """Wait until ``billing`` holds every message published on those topics until now."""
        ends = await end_offsets(self.stack.settings.kafka_bootstrap_servers, topics.BILLING_TOPICS)
        wanted = {place: end - 1 for place, end in ends.items() if end > self.billing_from.get(place, 0)}

        def caught_up() -> bool:
            last: dict[tuple[str, int], int] = {}
            for event in self.billing.events:
                place = (event.topic, event.partition)
                last[place] = max(last.get(place, -1), event.offset)
            return all(last.get(place, -1) >= offset for place, offset in wanted.items())

        await until(caught_up, "the billing topics were not read to their end")

    def messages(self, topic: str, object_id: str) -> list[CollectedEvent]:
        return [e for e in self.billing.events if e.topic == topic and e.key == self.key(object_id)]

    def webhooks_taken(self, event_id: str) -> list[dict[str, Any]]:
        """The importer's log lines of a webhook's event it took off the sync topic (one per copy)."""
        lines = self.stack["importer"].log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if event_id in line and '"sync.webhook_applied"' in line]

    def customer_published_as_stored(self, customer: str) -> Any:
        """The customer's stored record, once every message of it read so far is that record (at
        least one): whichever copies of an event re-read it, one state reached the topic."""
        stored = self.stored("customers", customer)
        published = self.messages(topics.BILLING_CUSTOMERS, customer)
        assert published, "the change was not published"
        assert all(
            CustomerRecord.model_validate(e.value) == CustomerRecord.model_validate(stored) for e in published
        )
        return stored

    def applied_ids(self) -> list[str]:
        state = self.mongo_db[SYNC_STATE_COLLECTION].find_one({"_id": self.connection_id}) or {}
        return list(state.get("applied_ids") or [])


async def end_offsets(bootstrap: str, topic_names: Sequence[str]) -> dict[tuple[str, int], int]:
    """The next offset of every partition of the topics, now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata
        partitions = [
            TopicPartition(topic, partition)
            for topic in topic_names
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def until(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def sync_live(mongo_db: Database[dict[str, Any]], connection_id: str) -> None:
    await until(
        lambda: (
            (mongo_db[SYNC_STATE_COLLECTION].find_one({"_id": connection_id}) or {}).get("status") == "live"
        ),
        "sync never went live",
    )


def deliveries(admin: SandboxAdmin, endpoint_id: str, event_id: str) -> list[str]:
    """What the fake did with each copy of an event: ``delivered``, ``dropped``, ``gave_up``,
    ``retry:<status>``…"""
    log = admin.webhook(endpoint_id, deliveries=True)["deliveries"]
    return [d["outcome"] for d in log if d["event"] == event_id]


def event_id_of(change: dict[str, Any]) -> str:
    [event] = change["events"]
    return str(event["id"])


async def a_dropped_change_is_polled(
    synced: SyncedConnection, admin: SandboxAdmin, endpoint: str, customer: str
) -> None:
    """A customer changed while its webhook endpoint drops the next delivery: the change reaches
    the store and the topic all the same, through the poll of the event list."""
    event_id = event_id_of(admin.update_object("customers", customer, {"email": "dropped@sync.example"}))

    await until(
        lambda: (synced.stored("customers", customer) or {}).get("email") == "dropped@sync.example",
        "the dropped webhook's change never reached the store",
    )
    [published] = await synced.billing.wait_for(
        lambda e: (
            e.topic == topics.BILLING_CUSTOMERS
            and e.key == synced.key(customer)
            and isinstance(e.value, dict)
            and e.value["email"] == "dropped@sync.example"
        )
    )
    assert CustomerRecord.model_validate(published.value) == CustomerRecord.model_validate(
        synced.stored("customers", customer)
    )
    # Never sent: the poll of the event list brought it.
    assert deliveries(admin, endpoint, event_id) == ["dropped"]
    assert synced.webhooks_taken(event_id) == []
    await until(lambda: event_id in synced.applied_ids(), "the poll did not record the event as applied")
