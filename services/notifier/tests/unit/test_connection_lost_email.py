"""The lost-connection email: its words for each reason, both parts with the link, once per loss over
TestKafkaBroker (connections.v1 in its own group), and its EmailSent with ``kind``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from contracts import topics
from contracts.events import (
    NOTIFICATION_EVENTS,
    ConnectionLost,
    EmailSent,
    Processor,
    ProcessorDisconnected,
)
from contracts.runtime.kafka import build_broker, publish_event
from faststream.kafka import TestKafkaBroker
from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.adapters.kafka_receipts import KafkaReceiptPublisher
from notifier.domain.notices import ConnectionLostNotice, EmailAddress, EmailIdentity, EmailKind
from notifier.entrypoints.connection_events import CONSUMER_GROUP, subscribe_connection_events
from notifier.entrypoints.import_events import CONSUMER_GROUP as IMPORTS_GROUP
from notifier.service.notify_connection_lost import NotifyConnectionLost, notice_for_loss
from notifier.service.send_import_email import SendImportEmail, SendPolicy
from notifier.settings import NotifierSettings
from notifier_fakes import FakeClock, FakeLedger, FakeMailer

APP_URL = "https://app.example.com"
LOSS_ID = UUID("7b0c6a3e-3f43-4e55-9d51-6f6d2b6c0a11")


def lost(reason: str = "deauthorized", contact_email: str | None = "owner@example.com") -> ConnectionLost:
    return ConnectionLost(
        event_id=LOSS_ID,
        account_id="acct-1",
        connection_id="con_1",
        processor=Processor.STRIPE if reason == "deauthorized" else Processor.CHARGEBEE,
        reason=reason,
        contact_email=contact_email,
    )


def rendered(reason: str) -> tuple[ConnectionLostNotice, Any]:
    notice = notice_for_loss(lost(reason))
    return notice, JinjaEmailRenderer(app_url=APP_URL).render(notice)


@pytest.mark.parametrize("part", ["text", "html"])
def test_a_deauthorization_says_access_was_removed_and_how_to_reconnect(part: str) -> None:
    notice, email = rendered("deauthorized")
    body = getattr(email, part)

    assert email.subject == "Reconnect Stripe: we can no longer read your billing data"
    assert "Access for our app was removed from your Stripe account" in body
    assert "approve the access request again" in body
    assert "Everything imported so far stays" in body
    assert "Reconnect Stripe" in body
    assert APP_URL in body
    assert notice.kind is EmailKind.CONNECTION_LOST


@pytest.mark.parametrize("part", ["text", "html"])
def test_a_rejected_key_says_the_key_stopped_working_and_to_bring_a_new_one(part: str) -> None:
    _, email = rendered("credentials_rejected")
    body = getattr(email, part)

    assert email.subject == "Reconnect Chargebee: we can no longer read your billing data"
    assert "Chargebee no longer accepts the API key you gave us" in body
    assert "Create a new API key in Chargebee for the same account" in body
    assert APP_URL in body


def test_the_html_part_links_to_the_app() -> None:
    _, email = rendered("deauthorized")
    assert f'href="{APP_URL}"' in email.html


def test_one_email_per_loss_with_its_own_ledger_key_and_message_id() -> None:
    notice = notice_for_loss(lost())

    assert notice.identity == EmailIdentity(str(LOSS_ID), EmailKind.CONNECTION_LOST)
    assert notice.identity.ledger_key == f"{LOSS_ID}:connection_lost"
    assert notice.identity.message_id("mail.example.com") == f"<connection-lost-{LOSS_ID}@mail.example.com>"
    assert notice.import_id is None


class Wired:
    def __init__(self) -> None:
        self.ledger = FakeLedger()
        self.mailer = FakeMailer()
        self.clock = FakeClock()
        self.receipts: list[dict[str, Any]] = []
        self.broker = build_broker(NotifierSettings(), service="notifier")
        send = SendImportEmail(
            ledger=self.ledger,
            mailer=self.mailer,
            renderer=JinjaEmailRenderer(app_url=APP_URL),
            receipts=KafkaReceiptPublisher(self.broker),
            sender=EmailAddress("no-reply@example.com"),
            policy=SendPolicy(attempts=2, base_delay_s=0.1, max_delay_s=0.1, lease=timedelta(seconds=30)),
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        subscribe_connection_events(self.broker, NotifyConnectionLost(send))

        @self.broker.subscriber(topics.NOTIFICATIONS, group_id="probe")
        async def probe(body: dict[str, Any]) -> None:
            self.receipts.append(body)


async def test_connection_lost_sends_one_email_and_an_email_sent_of_its_kind() -> None:
    wired = Wired()
    async with TestKafkaBroker(wired.broker):
        await publish_event(wired.broker, topics.CONNECTIONS, lost())
        await publish_event(wired.broker, topics.CONNECTIONS, lost())  # redelivered
        await publish_event(
            wired.broker,
            topics.CONNECTIONS,
            ProcessorDisconnected(account_id="acct-1", connection_id="con_1"),
        )

    [email] = wired.mailer.sent
    assert email.to == EmailAddress("owner@example.com")
    assert email.content.subject.startswith("Reconnect Stripe")
    [receipt] = [NOTIFICATION_EVENTS.parse(body) for body in wired.receipts]
    assert isinstance(receipt, EmailSent)
    assert (receipt.account_id, receipt.to, receipt.kind, receipt.import_id) == (
        "acct-1",
        "owner@example.com",
        "connection_lost",
        None,
    )
    assert receipt.event_id == EmailIdentity(str(LOSS_ID), EmailKind.CONNECTION_LOST).receipt_event_id


async def test_a_loss_without_a_contact_sends_nothing_and_is_not_retried() -> None:
    wired = Wired()
    async with TestKafkaBroker(wired.broker):
        await publish_event(wired.broker, topics.CONNECTIONS, lost(contact_email=None))

    assert wired.mailer.sent == []
    assert wired.receipts == []


def test_the_subscription_has_a_group_of_its_own() -> None:
    assert CONSUMER_GROUP == "notifier-connections"
    assert IMPORTS_GROUP == "notifier-imports"
