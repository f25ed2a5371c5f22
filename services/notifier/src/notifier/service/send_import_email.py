"""Send the email an event earned (an import's outcome, a lost connection) exactly once, however
often its event arrives and wherever.

The send is claimed in the ledger before any SMTP traffic, so a redelivered event or a second
notifier finds the claim and does not send. The one gap no SMTP client can close is a crash after
the server accepted the email and before the ledger says ``sent``: the claim's lease then expires
and the next delivery sends again (at least once, never lost). The resend carries the same
``Message-ID``, and ``docs/notifier.md`` explains why we chose this over at most once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

import structlog
from contracts.runtime.backoff import backoff_s
from contracts.runtime.logging import get_logger, redact_text

from notifier.domain.delivery import (
    EmailDeferred,
    EmailRenderer,
    Mailer,
    PermanentDeliveryFailure,
    ReceiptPublisher,
    TransientDeliveryFailure,
)
from notifier.domain.ledger import Claimed, EmailLedger, LedgerEntry, NotClaimed, SendState
from notifier.domain.notices import EmailAddress, Notice, OutgoingEmail
from notifier.service import metrics

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

REASON_TEXT_LIMIT: Final = 500
#: Tries at recording an accepted email: every failed one widens the window for a duplicate.
RECORD_ATTEMPTS: Final = 5
#: How often a delivery that found another sender's live claim looks again.
CLAIM_POLL_S: Final = 0.5

_log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def sender_identity() -> str:
    """Who claims a send: enough to find the process in logs when a lease is taken over."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How hard one delivery of an event tries, and how long a claim stays exclusive."""

    attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    lease: timedelta = timedelta(seconds=60)

    def delay_s(self, failed_attempts: int) -> float:
        """Exponential backoff with jitter, so two notifiers do not knock on the server in step."""
        return backoff_s(failed_attempts, base_s=self.base_delay_s, cap_s=self.max_delay_s)


class SendOutcome(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    REFUSED = "refused"
    ALREADY_REFUSED = "already_refused"
    #: Our lease ran out mid-retries and another sender took the email over: it sends, not us.
    HANDED_OVER = "handed_over"


class _ClaimLost(Exception):
    pass


class SendImportEmail:
    """The use case: claim, send with bounded retries, record, then publish the receipt."""

    def __init__(
        self,
        *,
        ledger: EmailLedger,
        mailer: Mailer,
        renderer: EmailRenderer,
        receipts: ReceiptPublisher,
        sender: EmailAddress,
        policy: SendPolicy | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        identity: str | None = None,
    ) -> None:
        self._ledger = ledger
        self._mailer = mailer
        self._renderer = renderer
        self._receipts = receipts
        self._sender = sender
        self._policy = policy or SendPolicy()
        self._now = clock
        self._sleep = sleep
        self._identity = identity or sender_identity()

    async def __call__(self, notice: Notice) -> SendOutcome:
        kind = notice.kind.value
        with structlog.contextvars.bound_contextvars(
            account_id=notice.account_id, import_id=notice.import_id, email_kind=kind
        ):
            email = OutgoingEmail(
                sender=self._sender,
                to=notice.to,
                message_id=notice.identity.message_id(self._sender.domain),
                content=self._renderer.render(notice),
            )
            claim = await self._claim(notice, email)
            if isinstance(claim, NotClaimed):
                return await self._settled_elsewhere(claim.entry)
            return await self._send_claimed(claim, email)

    async def _claim(self, notice: Notice, email: OutgoingEmail) -> Claimed | NotClaimed:
        """Claim the send, waiting while another sender holds a live lease on it.

        Waiting (rather than moving on) matters: if that sender has died, this delivery may be the
        last one of the event, and it must be the one that sends once the lease runs out.
        """
        deadline = self._now() + self._policy.lease + timedelta(seconds=CLAIM_POLL_S * 2)
        while True:
            now = self._now()
            wanted = LedgerEntry.first_claim(
                key=notice.identity.ledger_key,
                import_id=notice.import_id,
                account_id=notice.account_id,
                kind=notice.kind,
                to=str(notice.to),
                message_id=email.message_id,
                owner=f"{self._identity}:{uuid.uuid4().hex[:12]}",
                now=now,
                lease=self._policy.lease,
            )
            result = await self._ledger.claim(wanted, now=now, lease=self._policy.lease)
            if isinstance(result, Claimed) or result.entry.is_final:
                return result
            if now >= deadline:
                metrics.EMAILS_FAILED.labels(kind=notice.kind.value, reason="claim_held").inc()
                _log.warning("email.deferred", outcome="claim_held", owner=result.entry.owner)
                raise EmailDeferred("another sender still holds the claim on this email")
            await self._sleep(CLAIM_POLL_S)

    async def _settled_elsewhere(self, entry: LedgerEntry) -> SendOutcome:
        metrics.EMAILS_SUPPRESSED.labels(kind=entry.kind.value).inc()
        if entry.state is SendState.FAILED_PERMANENT:
            _log.info("email.handled", outcome=SendOutcome.ALREADY_REFUSED, reason=entry.last_error)
            return SendOutcome.ALREADY_REFUSED
        if not entry.event_published:
            # The sender before us recorded the send but did not get its receipt out.
            await self._publish_receipt(entry)
        _log.info("email.handled", outcome=SendOutcome.ALREADY_SENT, claims=entry.claims)
        return SendOutcome.ALREADY_SENT

    async def _send_claimed(self, claim: Claimed, email: OutgoingEmail) -> SendOutcome:
        entry = claim.entry
        owner = entry.owner or ""
        kind = entry.kind.value
        if claim.takeover:
            # A previous sender may have been accepted by the server just before it died.
            metrics.EMAILS_TAKEN_OVER.labels(kind=kind).inc()
            _log.warning("email.takeover", claims=entry.claims, message_id=email.message_id)
        try:
            attempts = await self._deliver(email, entry.key, owner)
        except PermanentDeliveryFailure as failure:
            reason = _reason(failure.reason, failure.smtp_code)
            await self._ledger.mark_failed_permanent(entry.key, owner, reason=reason, now=self._now())
            metrics.EMAILS_FAILED.labels(kind=kind, reason="permanent").inc()
            _log.error("email.handled", outcome=SendOutcome.REFUSED, reason=reason, to_domain=email.to.domain)
            return SendOutcome.REFUSED
        except TransientDeliveryFailure as failure:
            reason = _reason(failure.reason, failure.smtp_code)
            await self._ledger.release(entry.key, owner, reason=reason, now=self._now())
            metrics.EMAILS_FAILED.labels(kind=kind, reason="deferred").inc()
            _log.warning("email.deferred", outcome="smtp_unavailable", reason=reason)
            raise EmailDeferred(reason) from failure
        except _ClaimLost:
            _log.warning("email.handled", outcome=SendOutcome.HANDED_OVER)
            return SendOutcome.HANDED_OVER
        await self._record_sent(entry.key, owner)
        metrics.EMAILS_SENT.labels(kind=kind).inc()
        await self._publish_receipt(entry)
        _log.info(
            "email.handled",
            outcome=SendOutcome.SENT,
            attempts=attempts,
            claims=entry.claims,
            message_id=email.message_id,
            to_domain=email.to.domain,
        )
        return SendOutcome.SENT

    async def _deliver(self, email: OutgoingEmail, key: str, owner: str) -> int:
        """Up to ``attempts`` SMTP conversations with backoff; permanent refusals end it at once."""
        attempt = 0
        while True:
            attempt += 1
            # Fencing: a sender paused past its lease must not talk to SMTP once another took over.
            if attempt > 1 and not await self._ledger.renew(
                key, owner, now=self._now(), lease=self._policy.lease
            ):
                raise _ClaimLost
            try:
                await self._mailer.send(email)
            except TransientDeliveryFailure as failure:
                if attempt >= self._policy.attempts:
                    raise
                delay = self._policy.delay_s(attempt)
                _log.info(
                    "email.retry",
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    reason=_reason(failure.reason, failure.smtp_code),
                )
                await self._sleep(delay)
            else:
                return attempt

    async def _record_sent(self, key: str, owner: str) -> None:
        """Write ``sent`` through a store blip: until it lands, a redelivery would resend after the lease."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._ledger.mark_sent(key, owner, now=self._now())
            except Exception as error:
                if attempt >= RECORD_ATTEMPTS:
                    _log.error("email.unrecorded", error_type=type(error).__name__, error=str(error)[:200])
                    raise
                await self._sleep(self._policy.delay_s(attempt))
            else:
                return

    async def _publish_receipt(self, entry: LedgerEntry) -> None:
        """Publish EmailSent and record it; on failure the relay (:mod:`publish_receipts`) retries."""
        try:
            await self._receipts.email_sent(entry)
            await self._ledger.mark_event_published(entry.key, now=self._now())
        except Exception as error:
            # The email is out; only its receipt is late. Failing the delivery would gain nothing.
            metrics.RECEIPTS_DEFERRED.labels(kind=entry.kind.value).inc()
            _log.warning("receipt.deferred", error_type=type(error).__name__, error=str(error)[:200])


def _reason(text: str, code: int | None) -> str:
    reason = redact_text(text)[:REASON_TEXT_LIMIT]
    return f"{code} {reason}" if code is not None else reason
