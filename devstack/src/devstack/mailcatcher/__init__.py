"""A mail catcher: an SMTP server that keeps every message and shows them over HTTP (page and JSON).

It can also refuse on purpose: the first K ``RCPT`` or ``DATA`` commands answered with a transient
451 (or a permanent 550), so a sender's retry handling meets a real SMTP conversation; and hold its
answer to ``DATA``, so a sender can be stopped mid-conversation.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Self

from devstack.net import LOCALHOST, free_port

DEFAULT_WAIT_S: Final = 30.0
TRANSIENT_REPLY: Final = "451 4.3.0 Mail catcher refuses for now, try again later"
PERMANENT_REPLY: Final = "550 5.7.1 Mail catcher refuses permanently"


class Stage(StrEnum):
    """The SMTP command a refusal answers."""

    RCPT = "RCPT"
    DATA = "DATA"


@dataclass(frozen=True)
class Refusal:
    """Answer ``stage`` with an error: the next ``count`` times, or every time when ``count`` is None."""

    stage: Stage = Stage.RCPT
    count: int | None = 1
    permanent: bool = False

    @property
    def reply(self) -> str:
        return PERMANENT_REPLY if self.permanent else TRANSIENT_REPLY

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage.value, "count": self.count, "permanent": self.permanent}


@dataclass(frozen=True)
class CaughtMessage:
    """One received message, parsed: envelope, headers, the plain-text and HTML parts."""

    id: int
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    from_: str
    to: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    raw: bytes

    @classmethod
    def parse(cls, message_id: int, envelope_from: str, envelope_to: list[str], raw: bytes) -> CaughtMessage:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)  # the default policy builds EmailMessage objects
        return cls(
            id=message_id,
            received_at=datetime.now(UTC),
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            from_=str(parsed.get("From", "")),
            to=tuple(address for _, address in getaddresses([str(v) for v in parsed.get_all("To", [])])),
            subject=str(parsed.get("Subject", "")),
            text=_body(parsed, "plain"),
            html=_body(parsed, "html"),
            raw=raw,
        )

    @property
    def recipients(self) -> frozenset[str]:
        """Everyone it went to, by envelope or header, lower-cased."""
        return frozenset(address.lower() for address in (*self.envelope_to, *self.to))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "envelope_from": self.envelope_from,
            "envelope_to": list(self.envelope_to),
            "from": self.from_,
            "to": list(self.to),
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "size": len(self.raw),
        }


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or not isinstance(part, EmailMessage):
        return None
    content = part.get_content()
    return content.replace("\r\n", "\n") if isinstance(content, str) else None


class _SmtpHandler:
    """aiosmtpd handler: refuses while a refusal is armed, else records the message."""

    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: object, session: object, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refused = self._catcher._consume_refusal(Stage.RCPT)
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        refused = self._catcher._consume_refusal(Stage.DATA)
        if refused is not None:
            return refused
        hold_s = self._catcher._begin_hold()
        if hold_s > 0:
            try:
                # The message is in; its sender waits for the answer (and may die meanwhile).
                await asyncio.sleep(hold_s)
            except asyncio.CancelledError:
                # The sender went away before the answer: like a real server, which never took
                # responsibility for it, the message is dropped.
                self._catcher._end_hold(dropped=True)
                raise
            self._catcher._end_hold()
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        self._catcher._record(str(envelope.mail_from), list(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


class MailCatcher:
    """The SMTP server (a thread of its own) and, when ``http_port`` is not None, the HTTP UI.

    Use in-process in tests (``with MailCatcher() as catcher``) or as its own process through
    ``python -m devstack.mailcatcher``. Port 0 picks a free one; read ``smtp_port``/``http_port``.
    """

    def __init__(self, host: str = LOCALHOST, smtp_port: int = 0, http_port: int | None = None) -> None:
        self.host = host
        self.smtp_port = smtp_port or free_port(host)
        self.http_port = (http_port or free_port(host)) if http_port is not None else None
        self._changed = threading.Condition()
        self._messages: list[CaughtMessage] = []
        self._next_id = 1
        self._refusal: Refusal | None = None
        self._refused: list[tuple[Stage, str]] = []
        self._hold_s = 0.0
        self._holding = 0
        self._dropped = 0
        self._controller: Any = None
        self._http: Any = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            _SmtpHandler(self),
            hostname=self.host,
            port=self.smtp_port,
            ident="devstack mail catcher",
            decode_data=False,
            enable_SMTPUTF8=True,
        )
        self._controller.start()
        if self.http_port is not None:
            from devstack.mailcatcher.web import MailCatcherHttpServer

            self._http = MailCatcherHttpServer(self, self.host, self.http_port).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def http_url(self) -> str | None:
        return f"http://{self.host}:{self.http_port}" if self.http_port is not None else None

    # --- messages -------------------------------------------------------------------------------

    @property
    def messages(self) -> list[CaughtMessage]:
        with self._changed:
            return list(self._messages)

    def message(self, message_id: int) -> CaughtMessage | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def clear(self) -> None:
        """Forget every message, refusal and drop counted so far (an armed refusal stays)."""
        with self._changed:
            self._messages.clear()
            self._refused.clear()
            self._dropped = 0

    def wait_for_messages(
        self,
        count: int = 1,
        *,
        to: str | None = None,
        where: Callable[[CaughtMessage], bool] | None = None,
        timeout_s: float = DEFAULT_WAIT_S,
    ) -> list[CaughtMessage]:
        """Block until ``count`` messages match (sent ``to`` someone, passing ``where``); return them."""

        def matching() -> list[CaughtMessage]:
            return [
                m
                for m in self._messages
                if (to is None or to.lower() in m.recipients) and (where is None or where(m))
            ]

        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(found := matching()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.envelope_to, m.subject) for m in self._messages]
                    raise TimeoutError(
                        f"{len(found)} of {count} messages{f' to {to}' if to else ''}"
                        f" after {timeout_s:.0f} s;"
                        f" received: {seen}; refused: {self._refused}"
                    )
                self._changed.wait(remaining)
            return found

    async def wait_for_messages_async(
        self,
        count: int = 1,
        *,
        to: str | None = None,
        where: Callable[[CaughtMessage], bool] | None = None,
        timeout_s: float = DEFAULT_WAIT_S,
    ) -> list[CaughtMessage]:
        """``wait_for_messages`` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_messages, count, to=to, where=where, timeout_s=timeout_s)

    def _record(self, envelope_from: str, envelope_to: list[str], raw: bytes) -> None:
        with self._changed:
            self._messages.append(CaughtMessage.parse(self._next_id, envelope_from, envelope_to, raw))
            self._next_id += 1
            self._changed.notify_all()

    # --- refusing -------------------------------------------------------------------------------

    def refuse(
        self, count: int | None = 1, *, stage: Stage | str = Stage.RCPT, permanent: bool = False
    ) -> None:
        """Answer the next ``count`` ``stage`` commands (all when None) with 451, or 550 if permanent."""
        if count is not None and count < 1:
            self.accept()
            return
        with self._changed:
            self._refusal = Refusal(Stage(stage), count, permanent)

    def accept(self) -> None:
        """Stop refusing (and holding)."""
        with self._changed:
            self._refusal = None
            self._hold_s = 0.0

    def hold(self, seconds: float) -> None:
        """Answer each ``DATA`` only ``seconds`` after the message came in (0: at once), then keep
        the message as usual: a sender can be stopped while the server has its email but has not
        accepted it yet. A message whose sender goes away meanwhile is dropped (see ``dropped``)."""
        with self._changed:
            self._hold_s = max(0.0, seconds)

    @property
    def holding(self) -> int:
        """Messages received and not yet answered."""
        with self._changed:
            return self._holding

    def _begin_hold(self) -> float:
        with self._changed:
            if self._hold_s > 0:
                self._holding += 1
            return self._hold_s

    @property
    def dropped(self) -> int:
        """Held messages whose sender went away before the answer, so never kept."""
        with self._changed:
            return self._dropped

    def _end_hold(self, *, dropped: bool = False) -> None:
        with self._changed:
            self._holding -= 1
            self._dropped += int(dropped)
            self._changed.notify_all()

    @property
    def refusal(self) -> Refusal | None:
        with self._changed:
            return self._refusal

    @property
    def refused(self) -> list[tuple[Stage, str]]:
        """The commands refused so far: stage and reply."""
        with self._changed:
            return list(self._refused)

    def _consume_refusal(self, stage: Stage) -> str | None:
        with self._changed:
            refusal = self._refusal
            if refusal is None or refusal.stage is not stage:
                return None
            if refusal.count is not None:
                left = refusal.count - 1
                self._refusal = Refusal(refusal.stage, left, refusal.permanent) if left > 0 else None
            self._refused.append((stage, refusal.reply))
            self._changed.notify_all()
            return refusal.reply
