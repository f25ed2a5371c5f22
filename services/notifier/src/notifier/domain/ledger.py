"""The send ledger: one entry per email (an import's, a lost connection's), claimed before SMTP so only
one sender ever talks.

States and moves (all conditional, so two senders can never both win a move):

    (none) ──claim──▶ sending ──SMTP accepted──▶ sent ──receipt published──▶ sent + event_published
                        │  ├──refused for good──▶ failed_permanent
                        │  └──gave up for now──▶ released ──claim──▶ sending
                        └──lease expired (the sender died)──claim──▶ sending (a takeover: may resend)

``sent`` and ``failed_permanent`` are final: nobody sends again. ``sending`` under a live lease
belongs to its owner; anyone else waits for it to settle or expire.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from notifier.domain.notices import EmailKind


class SendState(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED_PERMANENT = "failed_permanent"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    key: str
    #: The import the email is about; ``None`` for one that is not (a lost connection).
    import_id: str | None
    account_id: str
    kind: EmailKind
    to: str
    message_id: str
    state: SendState
    owner: str | None
    lease_expires_at: datetime | None
    #: How many times a sender has claimed this email; above 1 after a release or a takeover.
    claims: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    event_published: bool = False
    last_error: str | None = None

    @property
    def is_final(self) -> bool:
        return self.state in (SendState.SENT, SendState.FAILED_PERMANENT)

    def is_claimable(self, now: datetime) -> bool:
        """Whether a new sender may take the email: released, or its sender's lease ran out."""
        if self.state is SendState.RELEASED:
            return True
        return (
            self.state is SendState.SENDING
            and self.lease_expires_at is not None
            and self.lease_expires_at <= now
        )

    def claimed_by(self, owner: str, now: datetime, lease: timedelta) -> LedgerEntry:
        return replace(
            self,
            state=SendState.SENDING,
            owner=owner,
            lease_expires_at=now + lease,
            claims=self.claims + 1,
            updated_at=now,
        )

    @classmethod
    def first_claim(
        cls,
        *,
        key: str,
        import_id: str | None,
        account_id: str,
        kind: EmailKind,
        to: str,
        message_id: str,
        owner: str,
        now: datetime,
        lease: timedelta,
    ) -> LedgerEntry:
        return cls(
            key=key,
            import_id=import_id,
            account_id=account_id,
            kind=kind,
            to=to,
            message_id=message_id,
            state=SendState.SENDING,
            owner=owner,
            lease_expires_at=now + lease,
            claims=1,
            created_at=now,
            updated_at=now,
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    """This sender owns the email now. ``takeover`` means a previous sender may already have sent it."""

    entry: LedgerEntry
    takeover: bool


@dataclass(frozen=True, slots=True)
class NotClaimed:
    """Someone else owns the email, or it is settled; ``entry`` is what the ledger holds."""

    entry: LedgerEntry


ClaimResult = Claimed | NotClaimed


class EmailLedger(Protocol):
    """Where sends are claimed and recorded. Every move is atomic and conditional on the state."""

    async def claim(self, entry: LedgerEntry, *, now: datetime, lease: timedelta) -> ClaimResult:
        """Insert ``entry`` (state ``sending``), or take over an existing claimable one, atomically."""
        ...

    async def renew(self, key: str, owner: str, *, now: datetime, lease: timedelta) -> bool:
        """Extend ``owner``'s live claim; ``False`` when the claim was lost (expired and taken)."""
        ...

    async def mark_sent(self, key: str, owner: str, *, now: datetime) -> None:
        """The server accepted the email: final, whoever holds the claim now."""
        ...

    async def mark_failed_permanent(self, key: str, owner: str, *, reason: str, now: datetime) -> bool:
        """The server refused the email for good; ``False`` when ``owner`` no longer holds it."""
        ...

    async def release(self, key: str, owner: str, *, reason: str, now: datetime) -> None:
        """Give the claim up so a later delivery of the event can send."""
        ...

    async def mark_event_published(self, key: str, *, now: datetime) -> None: ...

    async def get(self, key: str) -> LedgerEntry | None: ...

    async def unpublished_receipts(self, *, sent_before: datetime, limit: int) -> list[LedgerEntry]:
        """Sent emails whose EmailSent is not published yet, oldest first."""
        ...
