"""Everything the notifier's use cases work with, wired once by the composition root (real or fakes)."""

from __future__ import annotations

from dataclasses import dataclass

from notifier.domain.delivery import EmailRenderer, Mailer, ReceiptPublisher
from notifier.domain.ledger import EmailLedger


@dataclass(frozen=True, slots=True)
class Dependencies:
    ledger: EmailLedger
    mailer: Mailer
    renderer: EmailRenderer
    receipts: ReceiptPublisher
