"""The receipt relay: publish EmailSent for every sent email whose receipt is not out yet.

The send use case publishes the receipt right after the ledger says ``sent``; when that publish
fails (the broker is away) the ledger keeps ``event_published: false`` and this relay, run
periodically, publishes it until it is done. The event id is stable, so a receipt published twice
(by the use case and the relay racing) is deduplicated by its consumers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from contracts.runtime.logging import get_logger

from notifier.domain.delivery import ReceiptPublisher
from notifier.domain.ledger import EmailLedger
from notifier.service.send_import_email import Clock, utc_now

#: A receipt younger than this is still the send use case's to publish; leave it alone.
RECEIPT_GRACE: Final = timedelta(seconds=10)
BATCH_SIZE: Final = 100

_log = get_logger(__name__)


class PublishPendingReceipts:
    def __init__(
        self,
        *,
        ledger: EmailLedger,
        receipts: ReceiptPublisher,
        clock: Clock = utc_now,
        grace: timedelta = RECEIPT_GRACE,
    ) -> None:
        self._ledger = ledger
        self._receipts = receipts
        self._now = clock
        self._grace = grace

    async def __call__(self) -> int:
        """Publish one batch of late receipts; returns how many went out."""
        pending = await self._ledger.unpublished_receipts(
            sent_before=self._now() - self._grace, limit=BATCH_SIZE
        )
        published = 0
        for entry in pending:
            await self._receipts.email_sent(entry)
            await self._ledger.mark_event_published(entry.key, now=self._now())
            published += 1
        if pending:
            _log.info("receipts.relayed", published=published)
        return published
