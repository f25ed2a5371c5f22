"""Turn a ``ConnectionLost`` (connections.v1) into the one email that loss earns, and hand it to the
send use case: the ledger's claim on the event's id keeps it to one email however often it arrives."""

from __future__ import annotations

from contracts.events import ConnectionLost, Event
from contracts.runtime.logging import get_logger

from notifier.domain.notices import ConnectionLostNotice, EmailAddress, EmailKind, InvalidAddress
from notifier.service import metrics
from notifier.service.send_import_email import SendImportEmail, SendOutcome

_log = get_logger(__name__)


def notice_for_loss(event: ConnectionLost) -> ConnectionLostNotice:
    """The email a loss earns; :class:`InvalidAddress` when its contact cannot get one."""
    return ConnectionLostNotice(
        account_id=event.account_id,
        loss_id=str(event.event_id),
        connection_id=event.connection_id,
        to=EmailAddress((event.contact_email or "").strip()),
        processor=event.processor.value,
        reason=event.reason,
    )


class NotifyConnectionLost:
    """A lost connection gets its one email; the other connection events need none."""

    def __init__(self, send: SendImportEmail) -> None:
        self._send = send

    async def __call__(self, event: Event) -> SendOutcome | None:
        if not isinstance(event, ConnectionLost):
            return None
        try:
            notice = notice_for_loss(event)
        except InvalidAddress:
            # No contact, or one no server would take: retrying or dead-lettering cannot help.
            metrics.EMAILS_FAILED.labels(kind=EmailKind.CONNECTION_LOST.value, reason="invalid_address").inc()
            _log.error(
                "email.handled",
                outcome="invalid_address",
                account_id=event.account_id,
                connection_id=event.connection_id,
                email_kind=EmailKind.CONNECTION_LOST.value,
            )
            return None
        return await self._send(notice)
