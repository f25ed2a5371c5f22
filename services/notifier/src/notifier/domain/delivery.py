"""The ports the send use case talks through, and how a delivery can fail."""

from __future__ import annotations

from typing import Protocol

from contracts.errors import DependencyUnavailable

from notifier.domain.ledger import LedgerEntry
from notifier.domain.notices import Notice, OutgoingEmail, RenderedEmail


class DeliveryFailure(Exception):
    """The mail server did not take the email."""

    def __init__(self, reason: str, *, smtp_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.smtp_code = smtp_code


class TransientDeliveryFailure(DeliveryFailure):
    """Worth another try later: a 4xx answer, a dropped connection, a timeout, our own misconfiguration."""


class PermanentDeliveryFailure(DeliveryFailure):
    """No retry will help: the server refused this recipient or this message for good (5xx)."""


class EmailDeferred(DependencyUnavailable):
    """Every attempt of this delivery failed transiently; the claim is released for a later one.

    The mail server is down or refuses for now: the consumer waits and tries the event again, however
    long that lasts, instead of dead-lettering it."""


class Mailer(Protocol):
    async def send(self, email: OutgoingEmail) -> None:
        """Hand ``email`` to the mail server; raise a :class:`DeliveryFailure` when it is not taken."""
        ...


class EmailRenderer(Protocol):
    def render(self, notice: Notice) -> RenderedEmail: ...


class ReceiptPublisher(Protocol):
    async def email_sent(self, entry: LedgerEntry) -> None:
        """Publish EmailSent for ``entry``; the event id is stable so a republish is deduped."""
        ...
