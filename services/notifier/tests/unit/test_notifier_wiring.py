"""The ``imports.v1`` subscriber wired to the use case and the receipt publisher, over TestKafkaBroker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from contracts import topics
from contracts.events import (
    NOTIFICATION_EVENTS,
    EmailSent,
    ImportCompleted,
    ImportFailed,
    ImportStarted,
    Processor,
    ResourceCount,
)
from contracts.runtime.kafka import build_broker, publish_event
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.adapters.kafka_receipts import KafkaReceiptPublisher
from notifier.domain.delivery import TransientDeliveryFailure
from notifier.domain.ledger import SendState
from notifier.domain.notices import EmailAddress, EmailIdentity, EmailKind
from notifier.entrypoints.import_events import subscribe_import_events
from notifier.service.notify_import_outcome import NotifyImportOutcome
from notifier.service.send_import_email import SendImportEmail, SendPolicy
from notifier.settings import NotifierSettings
from notifier_fakes import T0, FakeClock, FakeLedger, FakeMailer


class Wired:
    def __init__(self, mailer: FakeMailer | None = None) -> None:
        self.ledger = FakeLedger()
        self.mailer = mailer or FakeMailer()
        self.clock = FakeClock()
        self.dead_letters: list[bytes] = []
        self.receipts: list[dict[str, Any]] = []
        self.broker = build_broker(
            NotifierSettings(
                consumer_max_attempts=2,
                consumer_retry_base_delay_s=0.001,
                consumer_retry_max_delay_s=0.001,
                consumer_outage_max_delay_s=0.001,
            ),
            service="notifier",
        )
        send = SendImportEmail(
            ledger=self.ledger,
            mailer=self.mailer,
            renderer=JinjaEmailRenderer(app_url="https://app.example.com"),
            receipts=KafkaReceiptPublisher(self.broker),
            sender=EmailAddress("no-reply@example.com"),
            policy=SendPolicy(attempts=2, base_delay_s=0.1, max_delay_s=0.1, lease=timedelta(seconds=30)),
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        subscribe_import_events(self.broker, NotifyImportOutcome(send))

        @self.broker.subscriber(topics.NOTIFICATIONS, group_id="probe")
        async def probe(body: dict[str, Any]) -> None:
            self.receipts.append(body)

        @self.broker.subscriber(topics.dead_letter_topic(topics.IMPORTS), group_id="probe")
        async def dead_letter_probe(message: KafkaMessage) -> None:
            self.dead_letters.append(message.body)


def import_completed(contact_email: str = "owner@example.com") -> ImportCompleted:
    return ImportCompleted(
        account_id="acct-1",
        import_id="imp-1",
        processor=Processor.STRIPE,
        resources={"customers": ResourceCount(imported=10), "invoices": ResourceCount(imported=1234)},
        past_cancellations=2,
        started_at=T0 - timedelta(minutes=2),
        finished_at=T0,
        contact_email=contact_email,
    )


async def publish(broker: KafkaBroker, event: Any) -> None:
    await publish_event(broker, topics.IMPORTS, event)


async def test_import_completed_sends_one_email_and_publishes_email_sent() -> None:
    wired = Wired()
    async with TestKafkaBroker(wired.broker):
        await publish(wired.broker, import_completed())
        await publish(wired.broker, import_completed())  # redelivered

    [email] = wired.mailer.sent
    assert email.content.subject == "Your Stripe import is complete"
    assert "1,234" in email.content.text
    [receipt] = [NOTIFICATION_EVENTS.parse(body) for body in wired.receipts]
    assert isinstance(receipt, EmailSent)
    assert (receipt.account_id, receipt.import_id, receipt.to) == ("acct-1", "imp-1", "owner@example.com")
    assert receipt.event_id == EmailIdentity("imp-1", EmailKind.IMPORT_COMPLETED).receipt_event_id


async def test_import_failed_sends_the_failure_email() -> None:
    wired = Wired()
    failed = ImportFailed(
        account_id="acct-1",
        import_id="imp-2",
        code="key_rejected",
        message="the key was rejected",
        contact_email="owner@example.com",
        processor=Processor.CHARGEBEE,
    )
    async with TestKafkaBroker(wired.broker):
        await publish(wired.broker, failed)

    [email] = wired.mailer.sent
    assert email.content.subject == "Your Chargebee import did not finish"
    assert len(wired.receipts) == 1


async def test_started_and_progress_events_send_nothing() -> None:
    wired = Wired()
    async with TestKafkaBroker(wired.broker):
        await publish(
            wired.broker, ImportStarted(account_id="acct-1", import_id="imp-1", processor=Processor.STRIPE)
        )

    assert wired.mailer.attempts == 0
    assert wired.ledger.entries == {}


async def test_a_contact_address_no_server_could_take_is_dropped_not_retried() -> None:
    wired = Wired()
    async with TestKafkaBroker(wired.broker):
        await publish(wired.broker, import_completed(contact_email="not an address"))

    assert wired.mailer.attempts == 0
    assert wired.dead_letters == []


async def test_an_smtp_outage_past_every_retry_waits_and_the_email_goes_out_once_it_ends() -> None:
    # Two SMTP attempts per handler call; five calls' worth of refusals, more than the two attempts
    # after which a failure that is not an outage would be dead-lettered.
    wired = Wired(FakeMailer([TransientDeliveryFailure("connection refused")] * 10))
    async with TestKafkaBroker(wired.broker):
        await publish(wired.broker, import_completed())

    assert wired.mailer.attempts == 11
    assert len(wired.mailer.sent) == 1
    assert wired.dead_letters == []
    assert wired.ledger.entries["imp-1:import_completed"].state is SendState.SENT
    assert [receipt["import_id"] for receipt in wired.receipts] == ["imp-1"]


@pytest.mark.parametrize("port", [None, "2525"])
def test_settings_follow_the_spec_defaults(monkeypatch: pytest.MonkeyPatch, port: str | None) -> None:
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_FROM", "SMTP_STARTTLS", "APP_BASE_URL", "HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    if port:
        monkeypatch.setenv("SMTP_PORT", port)
        monkeypatch.setenv("SMTP_PASSWORD", "hunter2")

    settings = NotifierSettings()

    assert settings.smtp_host == "localhost"
    assert settings.smtp_port == (int(port) if port else 1025)
    assert settings.smtp_from == "no-reply@localhost"
    assert settings.smtp_starttls is False
    assert settings.app_base_url == "http://localhost:8000"
    assert settings.http_port == 8002
    if port:
        assert settings.smtp_password is not None
        assert "hunter2" not in repr(settings)


def test_a_lease_shorter_than_one_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="EMAIL_LEASE_S"):
        NotifierSettings(email_lease_s=5, smtp_timeout_s=10)
