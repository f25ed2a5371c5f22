"""Helpers of the sync tests that change a fake processor's data and check that the store and the
``billing.*`` topics follow: connections to any fake Chargebee site, the processor's current state
of one object or of everything, and the records that state normalises to."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from aiokafka import AIOKafkaProducer
from contracts import topics
from contracts.connections import CredentialCipher, ProcessorCredentials
from contracts.events import Mode, Processor
from contracts.records import (
    RECORD_TYPES,
    CancellationRecord,
    CanonicalRecord,
    CouponRecord,
    SubscriptionRecord,
)
from contracts.sync import SYNC_STATE_COLLECTION
from devstack.events import CollectedEvent, TopicCollector
from devstack.settings import StackSecrets
from importer.domain.cancellations import cancellation_of
from importer.domain.normalize import normalizer_for
from importer.domain.source import NormalizationContext
from importer.domain.sync import record_type_of
from importer_integration_kit import Connection, FakeProcessors, trigger, wait_until
from pydantic import SecretStr
from pymongo.database import Database

from sandbox import config as sandbox_config

RECORD_TYPE: Final = {record_type.collection: record_type for record_type in RECORD_TYPES}
#: A poll every second (the sync's whole rate: no import runs once the sync is live).
FAST_SYNC: Final = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
#: The poll right after the import, then none for ten minutes: only webhooks apply changes.
WEBHOOKS_ONLY: Final = {"SYNC_INTERVAL_S": "600", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
CHANGE_TIMEOUT_S: Final = 60.0

Records = dict[str, dict[str, CanonicalRecord]]

_STRIPE_RETRIEVE: Final[Mapping[str, list[tuple[str, str | int | float | bool | None]]]] = {
    "subscriptions": [("expand[]", "discounts")],
    "prices": [("expand[]", "product")],
    "plans": [("expand[]", "product")],
}
_CHARGEBEE_ENTRY: Final = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "coupons": "coupon",
    "plans": "plan",
    "addons": "addon",
    "items": "item",
    "item_prices": "item_price",
}


@dataclass(frozen=True)
class Site:
    """A site of the fake Chargebee, its full-access key and its product catalog."""

    name: str
    key: str
    catalog: str


CATALOG_2: Final = Site(sandbox_config.SAMPLE_CHARGEBEE_SITE, sandbox_config.SAMPLE_CHARGEBEE_KEY, "2.0")
CATALOG_1: Final = Site(
    sandbox_config.SAMPLE_CHARGEBEE_PC1_SITE, sandbox_config.SAMPLE_CHARGEBEE_PC1_KEY, "1.0"
)


def connect_site(database: Database[dict[str, Any]], secrets: StackSecrets, site: Site) -> Connection:
    """A connected Chargebee connection of ``site`` in ``connections``, as the connector leaves it."""
    account_id = f"acct_{uuid.uuid4().hex[:10]}"
    connection_id = f"conn_{uuid.uuid4().hex[:10]}"
    cipher = CredentialCipher.from_setting(secrets.credentials_keys)
    now = datetime.now(UTC)
    database.connections.insert_one(
        {
            "_id": connection_id,
            "account_id": account_id,
            "processor": Processor.CHARGEBEE.value,
            "status": "connected",
            "mode": "test",
            "contact_email": "owner@example.com",
            "credentials_ciphertext": cipher.encrypt(ProcessorCredentials(api_key=SecretStr(site.key))),
            "created_at": now,
            "connected_at": now,
            "processor_account_id": site.name,
            "site": site.name,
            "product_catalog": site.catalog,
        }
    )
    return Connection(account_id, connection_id, Processor.CHARGEBEE, Mode.TEST, site.name)


def sync_state(database: Database[dict[str, Any]], connection: Connection) -> dict[str, Any]:
    return database[SYNC_STATE_COLLECTION].find_one({"_id": connection.connection_id}) or {}


def import_status(database: Database[dict[str, Any]], import_id: str) -> str | None:
    status = (database.imports.find_one({"_id": import_id}) or {}).get("status")
    return None if status is None else str(status)


async def until_live(database: Database[dict[str, Any]], connection: Connection, import_id: str) -> None:
    """The import completed and the sync's first poll (from before the import began) is done."""
    await wait_until(lambda: import_status(database, import_id) == "completed", timeout_s=240)
    await wait_until(lambda: sync_state(database, connection).get("status") == "live", timeout_s=120)


async def imported_and_syncing(
    database: Database[dict[str, Any]], producer: AIOKafkaProducer, connection: Connection
) -> None:
    await until_live(database, connection, await trigger(producer, connection))


class Processors:
    """The fake processors' current state, read through their API as an importer reads it."""

    def __init__(self, fake: FakeProcessors, site: Site = CATALOG_2) -> None:
        self.fake = fake
        self.site = site

    def current(self, processor: Processor, resource: str, object_id: str) -> dict[str, Any] | None:
        """The object as the processor holds it now; ``None`` once it is deleted."""
        if processor is Processor.STRIPE:
            answer = httpx.get(
                f"{self.fake.stripe_url}/v1/{resource}/{object_id}",
                params=_STRIPE_RETRIEVE.get(resource, []),
                headers={"Authorization": f"Bearer {sandbox_config.SAMPLE_STRIPE_KEY}"},
                timeout=30,
            )
            found = None if answer.status_code == 404 else answer.raise_for_status().json()
        else:
            base = self.fake.endpoints.chargebee_api_url_template.replace("{site}", self.site.name)
            answer = httpx.get(f"{base}/{resource}/{object_id}", auth=(self.site.key, ""), timeout=30)
            body = None if answer.status_code == 404 else answer.raise_for_status().json()
            found = None if body is None else body[_CHARGEBEE_ENTRY[resource]]
        if found is None or found.get("deleted") is True:
            return None
        return dict(found)

    def listed(self, resource: str) -> list[dict[str, Any]]:
        """Every live object of a resource of the Chargebee site, as the site serves it now."""
        base = self.fake.endpoints.chargebee_api_url_template.replace("{site}", self.site.name)
        objects: list[dict[str, Any]] = []
        offset: str | None = None
        with httpx.Client(timeout=30, auth=(self.site.key, "")) as http:
            while True:
                params = {"limit": "100", **({"offset": offset} if offset else {})}
                body = http.get(f"{base}/{resource}", params=params).raise_for_status().json()
                objects.extend(item[_CHARGEBEE_ENTRY[resource]] for item in body["list"])
                offset = body.get("next_offset")
                if not offset:
                    return objects

    def coupons(self, processor: Processor, account_id: str) -> dict[str, CouponRecord]:
        """The processor's coupons now, normalised (what a cancellation's worth is computed with)."""
        if processor is Processor.STRIPE:
            raws = self.everything(processor)["coupons"]
        else:
            raws = self.listed("coupons")
        return {
            coupon.object_id: coupon
            for raw in raws
            for coupon in normalised(processor, "coupons", raw, account_id)
            if isinstance(coupon, CouponRecord)
        }

    def everything(self, processor: Processor) -> dict[str, list[dict[str, Any]]]:
        """Every object of every imported resource as the processor holds it now (site ``CATALOG_2``)."""
        return dataclasses.replace(self.fake, _served={}).served(processor)


def normalised(
    processor: Processor, resource: str, raw: Mapping[str, Any], account_id: str
) -> list[CanonicalRecord]:
    context = NormalizationContext(account_id=account_id, as_of=datetime.now(UTC))
    return normalizer_for(processor).normalize(resource, raw, context)


def stored(
    database: Database[dict[str, Any]], collection: str, connection: Connection, object_id: str
) -> dict[str, Any] | None:
    return database[collection].find_one(
        {"_id": topics.billing_record_key(connection.account_id, connection.processor.value, object_id)}
    )


def same_record(document: Any, record: CanonicalRecord) -> bool:
    """Whether a stored document or a published value holds exactly ``record``."""
    if not isinstance(document, Mapping):
        return False
    return bool(type(record).model_validate(document).model_dump() == record.model_dump())


async def store_and_topic_follow(
    database: Database[dict[str, Any]],
    billing: TopicCollector,
    processors: Processors,
    connection: Connection,
    resource: str,
    object_id: str,
    *,
    was_cancelled: bool = False,
) -> list[CollectedEvent]:
    """Wait until the store holds exactly the records the processor's current state of the object
    normalises to (none once it is deleted), and its ``billing.*`` topic carries each record (a
    tombstone for a deleted one). A subscription's cancellation is checked too: stored and published
    while it is cancelled; else absent, with a tombstone if it ``was_cancelled``. The messages."""

    processor = connection.processor
    raw = processors.current(processor, resource, object_id)
    expected = [] if raw is None else normalised(processor, resource, raw, connection.account_id)
    for subscription in list(expected):
        if isinstance(subscription, SubscriptionRecord):
            coupons = processors.coupons(processor, connection.account_id)
            expected.extend(filter(None, [cancellation_of(subscription, coupons)]))
    record_type = record_type_of(resource)
    assert record_type is not None, resource
    collections = [record_type.collection]
    if resource == "subscriptions":
        collections.append(CancellationRecord.collection)
    by_collection = {record.collection: record for record in expected}
    assert set(by_collection) <= set(collections)

    def store_follows() -> bool:
        for collection in collections:
            document = stored(database, collection, connection, object_id)
            record = by_collection.get(collection)
            if (document is None) != (record is None):
                return False
            if record is not None and not same_record(document, record):
                return False
        return True

    try:
        await wait_until(store_follows, timeout_s=CHANGE_TIMEOUT_S)
    except TimeoutError:
        held = {c: stored(database, c, connection, object_id) for c in collections}
        wanted = {c: r.model_dump(mode="json") for c, r in by_collection.items()}
        raise AssertionError(f"{resource} {object_id}: stored {held}, expected {wanted}") from None
    key = topics.billing_record_key(connection.account_id, processor.value, object_id)
    messages: list[CollectedEvent] = []
    for collection in collections:
        topic = RECORD_TYPE[collection].topic
        record = by_collection.get(collection)
        if record is None and collection == CancellationRecord.collection and not was_cancelled:
            continue  # never cancelled: no cancellation to remove

        def published(event: CollectedEvent, topic: str = topic, record: Any = record) -> bool:
            if event.topic != topic or event.key != key:
                return False
            return event.value is None if record is None else same_record(event.value, record)

        found = await billing.wait_for(published, timeout_s=CHANGE_TIMEOUT_S)
        messages.append(found[-1])
    return messages


def everything_normalised(processors: Processors, processor: Processor, account_id: str) -> Records:
    """The records of every object the processor holds now: collection → key → record, with the
    cancellation each cancelled subscription derives."""
    records: Records = {}
    for resource, objects in processors.everything(processor).items():
        for raw in objects:
            for record in normalizer_for(processor).normalize(
                resource, raw, NormalizationContext(account_id=account_id)
            ):
                records.setdefault(record.collection, {})[record.key()] = record
    coupons = {
        record.object_id: record
        for record in records.get(CouponRecord.collection, {}).values()
        if isinstance(record, CouponRecord)
    }
    cancellations = records.setdefault(CancellationRecord.collection, {})
    for subscription in records.get(SubscriptionRecord.collection, {}).values():
        assert isinstance(subscription, SubscriptionRecord)
        cancellation = cancellation_of(subscription, coupons)
        if cancellation is not None:
            cancellations[cancellation.key()] = cancellation
    return records


def differences(database: Database[dict[str, Any]], connection: Connection, expected: Records) -> list[str]:
    """How the connection's stored records differ from ``expected`` (nothing: they are equal)."""
    found: list[str] = []
    owner = {"account_id": connection.account_id, "processor": connection.processor.value}
    for collection, records in expected.items():
        held = {document["_id"]: document for document in database[collection].find(owner)}
        found.extend(f"{collection}: {key} missing" for key in sorted(set(records) - set(held)))
        found.extend(f"{collection}: {key} not at the processor" for key in sorted(set(held) - set(records)))
        found.extend(
            f"{collection}: {key} differs: {RECORD_TYPE[collection].model_validate(held[key])} != {record}"
            for key, record in records.items()
            if key in held and not same_record(held[key], record)
        )
    return found
