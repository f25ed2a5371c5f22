"""Outgoing mail over SMTP (aiosmtplib), with every server answer sorted into transient or permanent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Final

import aiosmtplib
from opentelemetry import trace

from notifier.domain.delivery import DeliveryFailure, PermanentDeliveryFailure, TransientDeliveryFailure
from notifier.domain.notices import OutgoingEmail

_tracer = trace.get_tracer(__name__)

PERMANENT_CODE_MIN: Final = 500


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0


def build_message(email: OutgoingEmail) -> EmailMessage:
    """A ``multipart/alternative`` message: plain text first, HTML preferred by clients that can."""
    message = EmailMessage()
    message["Subject"] = email.content.subject
    message["From"] = str(email.sender)
    message["To"] = str(email.to)
    message["Date"] = formatdate(usegmt=True)
    # Stable per import and kind: a resend after a crash is recognisably the same message.
    message["Message-ID"] = email.message_id
    # RFC 3834: auto-responders must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.content.text)
    message.add_alternative(email.content.html, subtype="html")
    return message


class SmtpMailer:
    """Hands one email to the configured server per call; each call is one SMTP conversation."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def send(self, email: OutgoingEmail) -> None:
        server = self._server
        with _tracer.start_as_current_span("smtp.send") as span:
            span.set_attribute("server.address", server.host)
            span.set_attribute("server.port", server.port)
            try:
                # aiosmtplib's timeout is per command; the lease needs a bound on the whole conversation.
                async with asyncio.timeout(server.timeout_s):
                    await aiosmtplib.send(
                        build_message(email),
                        sender=str(email.sender),
                        recipients=[str(email.to)],
                        hostname=server.host,
                        port=server.port,
                        username=server.username,
                        password=server.password,
                        # False, not None: aiosmtplib would otherwise upgrade whenever the server offers it.
                        start_tls=server.starttls,
                        timeout=server.timeout_s,
                    )
            except aiosmtplib.SMTPRecipientsRefused as error:
                refusals = error.recipients
                raise _by_code(
                    "recipient refused",
                    [refusal.code for refusal in refusals],
                    "; ".join(refusal.message for refusal in refusals),
                ) from error
            except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as error:
                refused = "recipient" if isinstance(error, aiosmtplib.SMTPRecipientRefused) else "message"
                raise _by_code(f"{refused} refused", [error.code], error.message) from error
            except aiosmtplib.SMTPResponseException as error:
                # Sender refused, authentication, HELO: our configuration, not the recipient. Give
                # up for now (dead letter, replay once fixed) instead of refusing the contact forever.
                raise TransientDeliveryFailure(
                    f"{type(error).__name__}: {error.message}", smtp_code=error.code
                ) from error
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                raise TransientDeliveryFailure(f"{type(error).__name__}: {error}") from error


def _by_code(what: str, codes: list[int], message: str) -> DeliveryFailure:
    """5xx for every recipient is final; any 4xx means "try later"."""
    reason = f"{what}: {message}".strip()
    if codes and all(code >= PERMANENT_CODE_MIN for code in codes):
        return PermanentDeliveryFailure(reason, smtp_code=max(codes))
    return TransientDeliveryFailure(reason, smtp_code=min(codes) if codes else None)
