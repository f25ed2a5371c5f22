"""Turn an ``imports.v1`` event into the email it earns, and hand it to the send use case."""

from __future__ import annotations

from contracts.events import Event, ImportCompleted, ImportFailed
from contracts.runtime.logging import get_logger

from notifier.domain.notices import (
    EmailAddress,
    EmailKind,
    ImportCompletedNotice,
    ImportFailedNotice,
    ImportNotice,
    InvalidAddress,
)
from notifier.service import metrics
from notifier.service.send_import_email import SendImportEmail, SendOutcome

_log = get_logger(__name__)


def notice_for(event: ImportCompleted | ImportFailed) -> ImportNotice:
    """The email an import event earns; :class:`InvalidAddress` when its contact cannot get one."""
    to = EmailAddress(event.contact_email.strip())
    if isinstance(event, ImportCompleted):
        return ImportCompletedNotice(
            account_id=event.account_id,
            import_id=event.import_id,
            to=to,
            processor=event.processor.value,
            resources={name: count.imported for name, count in event.resources.items()},
            past_cancellations=event.past_cancellations,
            started_at=event.started_at,
            finished_at=event.finished_at,
        )
    return ImportFailedNotice(
        account_id=event.account_id,
        import_id=event.import_id,
        to=to,
        code=event.code,
        message=event.message,
        processor=event.processor.value if event.processor else None,
    )


class NotifyImportOutcome:
    """Completed and failed imports get their one email; the other import events need none."""

    def __init__(self, send: SendImportEmail) -> None:
        self._send = send

    async def __call__(self, event: Event) -> SendOutcome | None:
        if not isinstance(event, ImportCompleted | ImportFailed):
            return None
        try:
            notice = notice_for(event)
        except InvalidAddress:
            # No server would ever take it: retrying or dead-lettering the event cannot help.
            completed = isinstance(event, ImportCompleted)
            kind = EmailKind.IMPORT_COMPLETED if completed else EmailKind.IMPORT_FAILED
            metrics.EMAILS_FAILED.labels(kind=kind.value, reason="invalid_address").inc()
            _log.error(
                "email.handled",
                outcome="invalid_address",
                account_id=event.account_id,
                import_id=event.import_id,
                email_kind=kind.value,
            )
            return None
        return await self._send(notice)
