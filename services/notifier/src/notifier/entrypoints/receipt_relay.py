"""The background loop that runs the receipt relay every few seconds for the life of the process."""

from __future__ import annotations

import asyncio

from contracts.runtime.logging import get_logger

from notifier.service.publish_receipts import PublishPendingReceipts

_log = get_logger(__name__)


async def run_receipt_relay(relay: PublishPendingReceipts, *, interval_s: float) -> None:
    """Never returns on its own: a failed round (broker or store away) is logged and tried again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await relay()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _log.warning("receipts.relay_failed", error_type=type(error).__name__, error=str(error)[:200])
