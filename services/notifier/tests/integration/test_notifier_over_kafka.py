"""Import events on the real broker become real emails, once, with EmailSent on ``notifications.v1``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from contracts import topics
from notifier.domain.ledger import SendState
from notifier.settings import NotifierSettings
from notifier_integration_kit import APP_URL, AnImport, PublishImportEvent, notifier_of, running_notifier

WAIT_S = 30.0


def email_sent_for(an_import: AnImport) -> Any:
    return lambda event: event.type == "EmailSent" and event.value["import_id"] == an_import.import_id


async def test_an_import_completed_sends_one_email_with_both_parts_and_publishes_email_sent(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)

    async with running_notifier(notifier_settings):
        await publish_import_event(an_import.completed())
        [email] = await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
        [receipt] = await receipts.wait_for(email_sent_for(an_import), timeout_s=WAIT_S)

    assert email.subject == "Your Stripe import is complete"
    for part in (email.text, email.html):
        assert part is not None
        for count in ("1,204", "1,530", "18,230", "312 past cancellations"):
            assert count in part
        assert APP_URL in part
    assert f"<import-{an_import.import_id}.completed@billing-import.test>" in email.raw.decode()
    assert receipt.key == an_import.account_id
    assert receipt.value["to"] == an_import.contact_email
    assert receipt.value["account_id"] == an_import.account_id


async def test_the_same_event_delivered_twice_sends_one_email(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import, later = AnImport.new(), None
    receipts = await kafka_events(topics.NOTIFICATIONS)
    event = an_import.completed()

    async with running_notifier(notifier_settings) as app:
        await publish_import_event(event)
        await publish_import_event(event)
        # A later import of the same account is on the same partition: once its email is out, both
        # copies of the first event have been handled.
        later = an_import.sibling()
        await publish_import_event(later.completed())
        await mailbox.wait_for_messages_async(1, to=later.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(later), timeout_s=WAIT_S)
        entry = await notifier_of(app).ledger.get(f"{an_import.import_id}:import_completed")

    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1
    assert len([e for e in receipts.events if email_sent_for(an_import)(e)]) == 1
    assert entry is not None
    assert entry.state is SendState.SENT
    assert entry.event_published
    assert entry.claims == 1


async def test_two_notifiers_in_the_consumer_group_send_one_email(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    event = an_import.completed()

    async with running_notifier(notifier_settings), running_notifier(notifier_settings):
        await asyncio.gather(*(publish_import_event(event) for _ in range(3)))
        later = an_import.sibling()
        await publish_import_event(later.completed())
        await mailbox.wait_for_messages_async(1, to=later.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(later), timeout_s=WAIT_S)

    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1
    assert len([e for e in receipts.events if email_sent_for(an_import)(e)]) == 1


async def test_a_server_that_refuses_with_451_first_gets_the_email_on_a_later_attempt(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    mailbox.refuse(2, stage="RCPT")

    async with running_notifier(notifier_settings):
        await publish_import_event(an_import.completed())
        [email] = await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(an_import), timeout_s=WAIT_S)

    assert [reply[:3] for _, reply in mailbox.refused] == ["451", "451"]
    assert email.html is not None
    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1


async def test_a_mail_server_refusing_past_every_retry_is_waited_out_and_the_email_goes_out_once(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    # Far more refusals than the retries after which a failure that is not an outage is dead-lettered:
    # 4 SMTP attempts per handling, 2 handlings.
    settings = notifier_settings.model_copy(
        update={
            "consumer_max_attempts": 2,
            "consumer_retry_base_delay_s": 0.05,
            "consumer_outage_max_delay_s": 0.3,
        }
    )
    refusals = 4 * 2 * 3
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    dead_letters = await kafka_events(topics.dead_letter_topic(topics.IMPORTS))
    mailbox.refuse(None, stage="RCPT")

    async with running_notifier(settings):
        await publish_import_event(an_import.completed())
        async with asyncio.timeout(WAIT_S):
            for _ in iter(int, 1):  # until the outage outlasted every retry
                if len(mailbox.refused) >= refusals:
                    break
                await asyncio.sleep(0.1)
        mailbox.accept()
        [email] = await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(an_import), timeout_s=WAIT_S)

    assert email.subject == "Your Stripe import is complete"
    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1
    assert [e for e in dead_letters.events if e.key == an_import.account_id] == []


async def test_a_451_after_the_data_is_retried_too(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    mailbox.refuse(1, stage="DATA")

    async with running_notifier(notifier_settings):
        await publish_import_event(an_import.completed())
        await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(an_import), timeout_s=WAIT_S)

    assert len(mailbox.refused) == 1
    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1


async def test_a_recipient_refused_with_550_is_recorded_and_not_retried(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)
    mailbox.refuse(1, stage="RCPT", permanent=True)
    event = an_import.completed()

    async with running_notifier(notifier_settings) as app:
        await publish_import_event(event)
        await publish_import_event(event)  # a redelivery must not knock again either
        later = an_import.sibling()
        await publish_import_event(later.completed())
        await mailbox.wait_for_messages_async(1, to=later.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(later), timeout_s=WAIT_S)
        entry = await notifier_of(app).ledger.get(f"{an_import.import_id}:import_completed")

    assert [reply[:3] for _, reply in mailbox.refused] == ["550"]
    assert not [m for m in mailbox.messages if an_import.contact_email in m.recipients]
    assert entry is not None
    assert entry.state is SendState.FAILED_PERMANENT
    assert entry.last_error is not None
    assert entry.last_error.startswith("550 ")
    assert [e for e in receipts.events if email_sent_for(an_import)(e)] == []


async def test_a_failed_import_sends_one_email_saying_what_to_do(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    kafka_events: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    receipts = await kafka_events(topics.NOTIFICATIONS)

    async with running_notifier(notifier_settings):
        await publish_import_event(an_import.failed("key_rejected"))
        [email] = await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
        await receipts.wait_for(email_sent_for(an_import), timeout_s=WAIT_S)

    assert email.subject == "Your Stripe import did not finish"
    for part in (email.text, email.html):
        assert part is not None
        assert "revoked" in part
        assert "Reconnect Stripe" in part
        assert APP_URL in part


async def test_readiness_checks_the_broker_and_the_store_and_metrics_count_sends(
    notifier_settings: NotifierSettings,
    mailbox: Any,
    publish_import_event: PublishImportEvent,
) -> None:
    an_import = AnImport.new()
    async with running_notifier(notifier_settings) as app:
        await publish_import_event(an_import.completed())
        await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifier"
        ) as http:
            ready = await http.get("/readyz")
            metrics = await http.get("/metrics")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": "ok", "mongodb": "ok"}
    assert 'notifier_emails_sent_total{kind="import_completed"}' in metrics.text
