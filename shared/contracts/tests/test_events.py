from datetime import UTC, datetime, timedelta, timezone

import pytest
from contracts import topics
from contracts.errors import MalformedEvent
from contracts.events import (
    CONNECTION_EVENTS,
    IMPORT_EVENTS,
    ImportCompleted,
    Mode,
    Processor,
    ProcessorConnected,
    ResourceCount,
)
from contracts.records import CustomerRecord
from contracts.schema import schemas
from pydantic import ValidationError


def test_an_event_round_trips_through_its_topic_parser() -> None:
    event = ProcessorConnected(
        account_id="acct-1",
        connection_id="conn-1",
        processor=Processor.CHARGEBEE,
        mode=Mode.TEST,
        processor_account_id="acme-test",
        contact_email="owner@example.com",
    )

    parsed = CONNECTION_EVENTS.parse(event.model_dump_json().encode())

    assert parsed == event
    assert event.key() == b"acct-1"


def test_unknown_event_types_are_skipped_not_failed() -> None:
    assert CONNECTION_EVENTS.parse(b'{"type": "SomethingNew", "account_id": "a"}') is None


def test_a_non_object_message_is_a_permanent_failure() -> None:
    with pytest.raises(MalformedEvent):
        CONNECTION_EVENTS.parse(b"[1, 2]")


def test_a_known_event_with_missing_fields_does_not_parse() -> None:
    with pytest.raises(ValidationError):
        IMPORT_EVENTS.parse(b'{"type": "ImportCompleted", "account_id": "a"}')


def test_times_are_normalised_to_utc() -> None:
    started = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    event = ImportCompleted(
        account_id="a",
        import_id="i",
        processor=Processor.STRIPE,
        resources={"customers": ResourceCount(imported=3)},
        past_cancellations=1,
        started_at=started,
        finished_at=started,
        contact_email="x@example.com",
        occurred_at=started,
    )
    assert event.occurred_at.tzinfo == UTC
    assert event.occurred_at == started


def test_record_key_names_account_processor_and_object() -> None:
    record = CustomerRecord(account_id="a1", processor=Processor.STRIPE, object_id="cus_1")
    assert record.key() == "a1:stripe:cus_1"
    assert record.topic == topics.BILLING_CUSTOMERS


def test_every_public_model_exports_a_json_schema() -> None:
    exported = schemas()
    assert {"ProcessorConnected", "ImportCompleted", "EmailSent", "SubscriptionRecord"} <= exported.keys()
    assert "api_key_sealed" in exported["StripeKeySubmitted"]["properties"]


@pytest.mark.parametrize("account_id", ["acct:1", "", " acct", "acct 1", "-acct", "a" * 129])
def test_an_account_id_that_would_make_record_keys_ambiguous_does_not_parse(account_id: str) -> None:
    with pytest.raises(ValidationError):
        ProcessorConnected(
            account_id=account_id,
            connection_id="conn-1",
            processor=Processor.CHARGEBEE,
            mode=Mode.TEST,
            processor_account_id="acme-test",
            contact_email="owner@example.com",
        )


def test_a_record_key_is_never_built_from_an_ambiguous_account_id() -> None:
    assert topics.billing_record_key("acct_1", "stripe", "cus_1") == "acct_1:stripe:cus_1"
    with pytest.raises(ValueError, match="':'"):
        topics.billing_record_key("acct:1", "stripe", "cus_1")
