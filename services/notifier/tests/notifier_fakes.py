"""In-memory doubles of the notifier's ports, for unit tests; the real adapters are integration-tested."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from notifier.domain.delivery import DeliveryFailure
from notifier.domain.ledger import Claimed, ClaimResult, LedgerEntry, NotClaimed, SendState
from notifier.domain.notices import OutgoingEmail

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when a test (or a fake sleep) moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        # Let other tasks run, as a real sleep would.
        await asyncio.sleep(0)


class FakeLedger:
    """The ledger's state machine over a dict; each move yields first, so racing tasks interleave."""

    def __init__(self, entries: Iterable[LedgerEntry] = ()) -> None:
        self.entries: dict[str, LedgerEntry] = {entry.key: entry for entry in entries}
        self.steal_on_renew: str | None = None
        self.mark_sent_failures = 0

    async def claim(self, entry: LedgerEntry, *, now: datetime, lease: timedelta) -> ClaimResult:
        await asyncio.sleep(0)
        current = self.entries.get(entry.key)
        if current is None:
            self.entries[entry.key] = entry
            return Claimed(entry, takeover=False)
        if current.is_claimable(now):
            taken = current.claimed_by(entry.owner or "", now, lease)
            self.entries[entry.key] = taken
            return Claimed(taken, takeover=current.state is SendState.SENDING)
        return NotClaimed(current)

    async def renew(self, key: str, owner: str, *, now: datetime, lease: timedelta) -> bool:
        await asyncio.sleep(0)
        if self.steal_on_renew is not None:
            # Another sender took the email over while this one was backing off.
            self.entries[key] = replace(self.entries[key], owner=self.steal_on_renew)
        current = self.entries[key]
        if current.owner != owner or current.state is not SendState.SENDING:
            return False
        self.entries[key] = replace(current, lease_expires_at=now + lease, updated_at=now)
        return True

    async def mark_sent(self, key: str, owner: str, *, now: datetime) -> None:
        await asyncio.sleep(0)
        if self.mark_sent_failures:
            self.mark_sent_failures -= 1
            raise ConnectionError("store unavailable")
        current = self.entries[key]
        if current.state in (SendState.SENDING, SendState.RELEASED):
            self.entries[key] = replace(
                current,
                state=SendState.SENT,
                owner=owner,
                sent_at=now,
                lease_expires_at=None,
                event_published=False,
                updated_at=now,
            )

    async def mark_failed_permanent(self, key: str, owner: str, *, reason: str, now: datetime) -> bool:
        await asyncio.sleep(0)
        current = self.entries[key]
        if current.owner != owner or current.state is not SendState.SENDING:
            return False
        self.entries[key] = replace(
            current,
            state=SendState.FAILED_PERMANENT,
            last_error=reason,
            lease_expires_at=None,
            updated_at=now,
        )
        return True

    async def release(self, key: str, owner: str, *, reason: str, now: datetime) -> None:
        await asyncio.sleep(0)
        current = self.entries[key]
        if current.owner == owner and current.state is SendState.SENDING:
            self.entries[key] = replace(
                current, state=SendState.RELEASED, last_error=reason, lease_expires_at=None, updated_at=now
            )

    async def mark_event_published(self, key: str, *, now: datetime) -> None:
        await asyncio.sleep(0)
        current = self.entries[key]
        if current.state is SendState.SENT:
            self.entries[key] = replace(current, event_published=True, updated_at=now)

    async def get(self, key: str) -> LedgerEntry | None:
        return self.entries.get(key)

    async def unpublished_receipts(self, *, sent_before: datetime, limit: int) -> list[LedgerEntry]:
        pending = [
            entry
            for entry in self.entries.values()
            if entry.state is SendState.SENT
            and not entry.event_published
            and entry.sent_at is not None
            and entry.sent_at <= sent_before
        ]
        return sorted(pending, key=lambda entry: entry.sent_at or T0)[:limit]


class FakeMailer:
    """Accepts every email unless scripted to fail; ``gate`` holds a send until a test opens it."""

    def __init__(
        self, failures: Iterable[DeliveryFailure] = (), *, always: DeliveryFailure | None = None
    ) -> None:
        self.failures = list(failures)
        self.always = always
        self.attempts = 0
        self.sent: list[OutgoingEmail] = []
        self.gate: asyncio.Event | None = None
        self.sending = asyncio.Event()

    async def send(self, email: OutgoingEmail) -> None:
        self.attempts += 1
        self.sending.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(email)


class FakeReceipts:
    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.published: list[LedgerEntry] = []

    async def email_sent(self, entry: LedgerEntry) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unavailable")
        self.published.append(entry)
