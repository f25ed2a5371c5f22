"""EmailSent on ``notifications.v1``: the receipt downstream consumers act on."""

from __future__ import annotations

from contracts import topics
from contracts.events import EmailSent
from contracts.runtime.kafka import publish_event
from faststream.kafka import KafkaBroker

from notifier.domain.ledger import LedgerEntry
from notifier.domain.notices import receipt_event_id


def receipt_for(entry: LedgerEntry) -> EmailSent:
    return EmailSent(
        event_id=receipt_event_id(entry.key),
        account_id=entry.account_id,
        import_id=entry.import_id,
        to=entry.to,
        kind=entry.kind.value,
    )


class KafkaReceiptPublisher:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def email_sent(self, entry: LedgerEntry) -> None:
        await publish_event(self._broker, topics.NOTIFICATIONS, receipt_for(entry))
