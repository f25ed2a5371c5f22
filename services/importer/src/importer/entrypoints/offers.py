"""The ``offers.v1`` consumer: each ``OfferApplied`` is kept for recovered revenue."""

from __future__ import annotations

from contracts.events import Event, OfferApplied
from contracts.runtime.kafka import EventHandler
from contracts.runtime.logging import get_logger

from importer.domain.recovered_revenue import RecoveredRevenueSources
from importer.service.recovered_revenue import record_offer

_log = get_logger(__name__)


def offer_event_handler(sources: RecoveredRevenueSources) -> EventHandler:
    async def handle(event: Event) -> None:
        if isinstance(event, OfferApplied):
            await record_offer(sources, event)
            _log.info("offer.recorded", account_id=event.account_id, offer_id=event.offer_id)

    return handle
