"""The send ledger's state machine as the use case drives it: once, despite redelivery, races and crashes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.domain.delivery import EmailDeferred, PermanentDeliveryFailure, TransientDeliveryFailure
from notifier.domain.ledger import LedgerEntry, SendState
from notifier.domain.notices import EmailAddress, EmailKind, ImportCompletedNotice, ImportFailedNotice
from notifier.service.publish_receipts import PublishPendingReceipts
from notifier.service.send_import_email import SendImportEmail, SendOutcome, SendPolicy
from notifier_fakes import T0, FakeClock, FakeLedger, FakeMailer, FakeReceipts

LEASE = timedelta(seconds=60)
POLICY = SendPolicy(attempts=4, base_delay_s=0.5, max_delay_s=8.0, lease=LEASE)
SENDER = EmailAddress("no-reply@mail.example.com")
KEY = "imp-1:import_completed"


def completed(import_id: str = "imp-1") -> ImportCompletedNotice:
    return ImportCompletedNotice(
        account_id="acct-1",
        import_id=import_id,
        to=EmailAddress("owner@example.com"),
        processor="stripe",
        resources={"customers": 1204, "subscriptions": 1530},
        past_cancellations=312,
        started_at=T0 - timedelta(minutes=3),
        finished_at=T0,
    )


class World:
    def __init__(
        self,
        *,
        ledger: FakeLedger | None = None,
        mailer: FakeMailer | None = None,
        receipts: FakeReceipts | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.ledger = ledger or FakeLedger()
        self.mailer = mailer or FakeMailer()
        self.receipts = receipts or FakeReceipts()

    def sender(self, identity: str = "notifier-a", mailer: FakeMailer | None = None) -> SendImportEmail:
        return SendImportEmail(
            ledger=self.ledger,
            mailer=mailer or self.mailer,
            renderer=JinjaEmailRenderer(app_url="https://app.example.com"),
            receipts=self.receipts,
            sender=SENDER,
            policy=POLICY,
            clock=self.clock,
            sleep=self.clock.sleep,
            identity=identity,
        )

    def entry(self) -> LedgerEntry:
        return self.ledger.entries[KEY]


async def test_a_completed_import_sends_one_email_records_it_and_publishes_its_receipt() -> None:
    world = World()

    outcome = await world.sender()(completed())

    assert outcome is SendOutcome.SENT
    [email] = world.mailer.sent
    assert email.to == EmailAddress("owner@example.com")
    assert email.message_id == "<import-imp-1.completed@mail.example.com>"
    assert world.entry().state is SendState.SENT
    assert world.entry().event_published
    assert [receipt.key for receipt in world.receipts.published] == [KEY]


async def test_a_redelivered_event_sends_nothing_more() -> None:
    world = World()
    send = world.sender()

    await send(completed())
    again = await send(completed())

    assert again is SendOutcome.ALREADY_SENT
    assert len(world.mailer.sent) == 1
    assert len(world.receipts.published) == 1


async def test_two_senders_racing_on_one_import_send_one_email() -> None:
    world = World()
    world.mailer.gate = asyncio.Event()
    first = asyncio.create_task(world.sender("notifier-a")(completed()))
    await world.mailer.sending.wait()

    # The second notifier finds a live claim and waits for it to settle instead of sending.
    second = asyncio.create_task(world.sender("notifier-b")(completed()))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not second.done()
    world.mailer.gate.set()

    assert sorted([await first, await second]) == sorted([SendOutcome.SENT, SendOutcome.ALREADY_SENT])
    assert world.mailer.attempts == 1
    assert len(world.mailer.sent) == 1


async def test_a_sender_that_died_mid_send_is_taken_over_when_its_lease_expires() -> None:
    crashed = LedgerEntry.first_claim(
        key=KEY,
        import_id="imp-1",
        account_id="acct-1",
        kind=EmailKind.IMPORT_COMPLETED,
        to="owner@example.com",
        message_id="<import-imp-1.completed@mail.example.com>",
        owner="notifier-dead:1",
        now=T0,
        lease=LEASE,
    )
    world = World(ledger=FakeLedger([crashed]))

    # Redelivered at once: the lease is still live, so the delivery waits for it, then takes over.
    outcome = await world.sender()(completed())

    assert outcome is SendOutcome.SENT
    assert world.clock.now >= T0 + LEASE
    assert world.entry().claims == 2
    # The resend is, to mail clients, the same message as whatever the dead sender got out.
    assert world.mailer.sent[0].message_id == crashed.message_id


async def test_a_transient_refusal_is_retried_with_growing_backoff_and_then_sent() -> None:
    world = World(mailer=FakeMailer([TransientDeliveryFailure("451 try later", smtp_code=451)] * 2))

    outcome = await world.sender()(completed())

    assert outcome is SendOutcome.SENT
    assert world.mailer.attempts == 3
    assert len(world.mailer.sent) == 1
    first, second = world.clock.slept
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


async def test_transient_failures_past_the_budget_release_the_claim_for_a_replay() -> None:
    world = World(mailer=FakeMailer(always=TransientDeliveryFailure("connection refused")))

    with pytest.raises(EmailDeferred):
        await world.sender()(completed())

    assert world.mailer.attempts == POLICY.attempts
    assert len(world.clock.slept) == POLICY.attempts - 1
    assert all(delay <= POLICY.max_delay_s for delay in world.clock.slept)
    assert world.entry().state is SendState.RELEASED
    assert world.entry().last_error == "connection refused"
    assert world.receipts.published == []

    # The dead-letter replay (or the next redelivery) now sends it, once.
    replay = World(ledger=world.ledger)
    assert await replay.sender()(completed()) is SendOutcome.SENT
    assert len(replay.mailer.sent) == 1
    assert replay.entry().claims == 2


async def test_a_permanent_refusal_is_recorded_once_and_never_retried() -> None:
    refusal = PermanentDeliveryFailure("recipient refused: mailbox unavailable", smtp_code=550)
    world = World(mailer=FakeMailer(always=refusal))
    send = world.sender()

    outcome = await send(completed())
    again = await send(completed())

    assert outcome is SendOutcome.REFUSED
    assert again is SendOutcome.ALREADY_REFUSED
    assert world.mailer.attempts == 1
    assert world.clock.slept == []
    assert world.entry().state is SendState.FAILED_PERMANENT
    assert world.entry().last_error == "550 recipient refused: mailbox unavailable"
    assert world.receipts.published == []


async def test_a_receipt_that_could_not_be_published_goes_out_on_redelivery_without_a_second_email() -> None:
    world = World(receipts=FakeReceipts(failures=1))
    send = world.sender()

    assert await send(completed()) is SendOutcome.SENT
    assert world.entry().state is SendState.SENT
    assert not world.entry().event_published

    assert await send(completed()) is SendOutcome.ALREADY_SENT
    assert len(world.mailer.sent) == 1
    assert world.entry().event_published
    assert [receipt.key for receipt in world.receipts.published] == [KEY]


async def test_the_relay_publishes_receipts_left_behind_and_only_once() -> None:
    world = World(receipts=FakeReceipts(failures=1))
    await world.sender()(completed())
    relay = PublishPendingReceipts(
        ledger=world.ledger, receipts=world.receipts, clock=world.clock, grace=timedelta(seconds=10)
    )

    assert await relay() == 0  # too fresh: still the use case's to publish
    world.clock.now += timedelta(seconds=11)
    assert await relay() == 1
    assert await relay() == 0

    assert world.entry().event_published
    assert len(world.receipts.published) == 1


async def test_a_store_blip_after_the_server_accepted_is_ridden_out_without_a_second_email() -> None:
    world = World()
    world.ledger.mark_sent_failures = 2

    outcome = await world.sender()(completed())
    again = await world.sender()(completed())

    assert (outcome, again) == (SendOutcome.SENT, SendOutcome.ALREADY_SENT)
    assert len(world.mailer.sent) == 1
    assert world.entry().state is SendState.SENT


async def test_a_sender_that_lost_its_claim_while_backing_off_stops_sending() -> None:
    world = World(mailer=FakeMailer([TransientDeliveryFailure("451 later", smtp_code=451)]))
    world.ledger.steal_on_renew = "notifier-b:other"

    outcome = await world.sender()(completed())

    assert outcome is SendOutcome.HANDED_OVER
    assert world.mailer.attempts == 1
    assert world.mailer.sent == []


async def test_the_completed_and_the_failed_email_of_one_import_are_separate_sends() -> None:
    world = World()
    send = world.sender()
    failed = ImportFailedNotice(
        account_id="acct-1",
        import_id="imp-1",
        to=EmailAddress("owner@example.com"),
        code="key_rejected",
        message="401",
        processor="stripe",
    )

    await send(completed())
    await send(failed)

    assert {email.message_id for email in world.mailer.sent} == {
        "<import-imp-1.completed@mail.example.com>",
        "<import-imp-1.failed@mail.example.com>",
    }
    assert set(world.ledger.entries) == {KEY, "imp-1:import_failed"}
