"""The send ledger on the real MongoDB-wire store, with the real SMTP client and server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.adapters.mongo_ledger import COLLECTION, MongoEmailLedger
from notifier.adapters.smtp_mailer import SmtpMailer
from notifier.bootstrap import send_policy, smtp_server
from notifier.domain.delivery import EmailDeferred
from notifier.domain.ledger import LedgerEntry, SendState
from notifier.domain.notices import EmailAddress, EmailKind
from notifier.service.notify_import_outcome import notice_for
from notifier.service.publish_receipts import PublishPendingReceipts
from notifier.service.send_import_email import SendImportEmail, SendOutcome
from notifier.settings import NotifierSettings
from notifier_fakes import FakeReceipts
from notifier_integration_kit import AnImport
from pymongo import AsyncMongoClient

WAIT_S = 30.0


@pytest_asyncio.fixture
async def ledger(notifier_settings: NotifierSettings) -> AsyncIterator[MongoEmailLedger]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(notifier_settings.mongodb_url, tz_aware=True)
    ledger = MongoEmailLedger(client, notifier_settings.mongodb_database)
    await ledger.ensure_indexes()
    try:
        yield ledger
    finally:
        await client.close()


def sender(
    settings: NotifierSettings, ledger: MongoEmailLedger, receipts: FakeReceipts, name: str
) -> SendImportEmail:
    """A notifier's use case with the real ledger and SMTP client; only the receipt sink is recorded."""
    return SendImportEmail(
        ledger=ledger,
        mailer=SmtpMailer(smtp_server(settings)),
        renderer=JinjaEmailRenderer(app_url=settings.app_base_url),
        receipts=receipts,
        sender=EmailAddress(settings.smtp_from),
        policy=send_policy(settings),
        identity=name,
    )


async def test_five_senders_racing_on_one_import_send_one_email(
    notifier_settings: NotifierSettings, ledger: MongoEmailLedger, mailbox: Any
) -> None:
    an_import = AnImport.new()
    receipts = FakeReceipts()
    notice = notice_for(an_import.completed())
    senders = [sender(notifier_settings, ledger, receipts, f"notifier-{n}") for n in range(5)]

    outcomes = await asyncio.gather(*(send(notice) for send in senders))

    assert sorted(outcomes) == sorted([SendOutcome.SENT] + [SendOutcome.ALREADY_SENT] * 4)
    await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
    assert len([m for m in mailbox.messages if an_import.contact_email in m.recipients]) == 1
    entry = await ledger.get(notice.identity.ledger_key)
    assert entry is not None
    assert (entry.state, entry.claims, entry.event_published) == (SendState.SENT, 1, True)
    # Every sender that found the email sent may republish its receipt; the event id is the same.
    assert {receipt.key for receipt in receipts.published} == {notice.identity.ledger_key}


async def test_a_claim_left_by_a_crashed_sender_is_taken_over_and_resent_with_the_same_message_id(
    notifier_settings: NotifierSettings, ledger: MongoEmailLedger, mailbox: Any
) -> None:
    an_import = AnImport.new()
    notice = notice_for(an_import.completed())
    message_id = notice.identity.message_id("billing-import.test")
    # What a sender that died between the server's 250 and its ledger write leaves behind.
    crashed_at = datetime.now(UTC) - timedelta(seconds=notifier_settings.email_lease_s + 1)
    left = LedgerEntry.first_claim(
        key=notice.identity.ledger_key,
        import_id=an_import.import_id,
        account_id=an_import.account_id,
        kind=EmailKind.IMPORT_COMPLETED,
        to=an_import.contact_email,
        message_id=message_id,
        owner="notifier-crashed:1:abc",
        now=crashed_at,
        lease=timedelta(seconds=notifier_settings.email_lease_s),
    )
    await ledger.claim(left, now=crashed_at, lease=timedelta(seconds=notifier_settings.email_lease_s))

    outcome = await sender(notifier_settings, ledger, FakeReceipts(), "notifier-b")(notice)

    assert outcome is SendOutcome.SENT
    [email] = await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
    assert f"Message-ID: {message_id}" in email.raw.decode()
    entry = await ledger.get(notice.identity.ledger_key)
    assert entry is not None
    assert (entry.state, entry.claims) == (SendState.SENT, 2)
    assert entry.owner is not None
    assert entry.owner.startswith("notifier-b:")


async def test_an_unreachable_server_releases_the_claim_and_a_replay_sends(
    notifier_settings: NotifierSettings, ledger: MongoEmailLedger, mailbox: Any
) -> None:
    an_import = AnImport.new()
    notice = notice_for(an_import.completed())
    mailbox.refuse(None, stage="RCPT")  # every RCPT answered 451: an outage longer than our budget
    receipts = FakeReceipts()

    with pytest.raises(EmailDeferred):
        await sender(notifier_settings, ledger, receipts, "notifier-a")(notice)
    assert len(mailbox.refused) == notifier_settings.email_send_attempts
    entry = await ledger.get(notice.identity.ledger_key)
    assert entry is not None
    assert entry.state is SendState.RELEASED
    assert entry.last_error is not None
    assert entry.last_error.startswith("451 ")

    mailbox.accept()
    outcome = await sender(notifier_settings, ledger, receipts, "notifier-a")(notice)

    assert outcome is SendOutcome.SENT
    await mailbox.wait_for_messages_async(1, to=an_import.contact_email, timeout_s=WAIT_S)
    assert [receipt.import_id for receipt in receipts.published] == [an_import.import_id]


async def test_the_relay_publishes_a_receipt_the_sender_could_not(
    notifier_settings: NotifierSettings, ledger: MongoEmailLedger, mailbox: Any
) -> None:
    an_import = AnImport.new()
    notice = notice_for(an_import.completed())
    receipts = FakeReceipts(failures=1)
    await sender(notifier_settings, ledger, receipts, "notifier-a")(notice)
    assert receipts.published == []

    relay = PublishPendingReceipts(ledger=ledger, receipts=receipts, grace=timedelta(0))
    assert await relay() == 1
    assert await relay() == 0

    entry = await ledger.get(notice.identity.ledger_key)
    assert entry is not None
    assert entry.event_published
    assert [receipt.import_id for receipt in receipts.published] == [an_import.import_id]


async def test_the_ledger_holds_one_document_per_import_email(
    notifier_settings: NotifierSettings, ledger: MongoEmailLedger, mailbox: Any
) -> None:
    an_import = AnImport.new()
    receipts = FakeReceipts()
    send = sender(notifier_settings, ledger, receipts, "notifier-a")

    await send(notice_for(an_import.completed()))
    await send(notice_for(an_import.completed()))

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(notifier_settings.mongodb_url)
    try:
        documents = await client[notifier_settings.mongodb_database][COLLECTION].find({}).to_list()
    finally:
        await client.close()
    assert [document["_id"] for document in documents] == [f"{an_import.import_id}:import_completed"]
    assert documents[0]["state"] == "sent"
