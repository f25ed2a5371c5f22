"""The SMTP adapter against a real aiosmtpd server with AUTH: credentials used, never echoed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from devstack.net import free_port
from notifier.adapters.smtp_mailer import SmtpMailer, SmtpServer
from notifier.domain.delivery import PermanentDeliveryFailure, TransientDeliveryFailure
from notifier.domain.notices import EmailAddress, OutgoingEmail, RenderedEmail

USERNAME = "notifier"
PASSWORD = "smtp-pa55-never-logged"
HOST = "127.0.0.1"

# Plain-text AUTH is fine on loopback in a test; aiosmtpd warns about it on every start.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


class Mailroom:
    """Accepts mail only from an authenticated session, keeps it, refuses ``nobody@``."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        """aiosmtpd's authenticator hook; ``handled=False`` lets the server answer 535 itself."""
        given = (auth_data.login, auth_data.password) if isinstance(auth_data, LoginPassword) else None
        accepted = given in ((USERNAME, PASSWORD), (USERNAME.encode(), PASSWORD.encode()))
        return AuthResult(success=accepted, handled=False)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def mailroom() -> Iterator[tuple[Mailroom, int]]:
    handler = Mailroom()
    port = free_port()
    controller = Controller(
        handler,
        hostname=HOST,
        port=port,
        authenticator=handler,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def email_to(address: str) -> OutgoingEmail:
    return OutgoingEmail(
        sender=EmailAddress("no-reply@billing-import.test"),
        to=EmailAddress(address),
        message_id="<import-imp-1.completed@billing-import.test>",
        content=RenderedEmail(subject="Your Stripe import is complete", text="plain", html="<p>html</p>"),
    )


async def test_the_configured_credentials_log_in_and_the_email_is_delivered(
    mailroom: tuple[Mailroom, int],
) -> None:
    handler, port = mailroom
    mailer = SmtpMailer(SmtpServer(HOST, port, username=USERNAME, password=PASSWORD, timeout_s=5))

    await mailer.send(email_to("owner@example.com"))

    [envelope] = handler.received
    assert envelope.rcpt_tos == ["owner@example.com"]
    assert b"Message-ID: <import-imp-1.completed@billing-import.test>" in envelope.original_content


async def test_a_rejected_login_is_transient_and_does_not_echo_the_password(
    mailroom: tuple[Mailroom, int],
) -> None:
    handler, port = mailroom
    mailer = SmtpMailer(SmtpServer(HOST, port, username=USERNAME, password="wrong-" + PASSWORD, timeout_s=5))

    with pytest.raises(TransientDeliveryFailure) as failure:
        await mailer.send(email_to("owner@example.com"))

    assert failure.value.smtp_code == 535
    assert PASSWORD not in failure.value.reason
    assert handler.received == []


async def test_an_unknown_recipient_is_a_permanent_failure(mailroom: tuple[Mailroom, int]) -> None:
    _, port = mailroom
    mailer = SmtpMailer(SmtpServer(HOST, port, username=USERNAME, password=PASSWORD, timeout_s=5))

    with pytest.raises(PermanentDeliveryFailure) as failure:
        await mailer.send(email_to("nobody@example.com"))

    assert failure.value.smtp_code == 550
    assert "No such user" in failure.value.reason


async def test_required_starttls_on_a_server_without_it_is_transient(mailroom: tuple[Mailroom, int]) -> None:
    _, port = mailroom
    mailer = SmtpMailer(SmtpServer(HOST, port, starttls=True, timeout_s=5))

    with pytest.raises(TransientDeliveryFailure):
        await mailer.send(email_to("owner@example.com"))


async def test_no_server_listening_is_transient() -> None:
    mailer = SmtpMailer(SmtpServer(HOST, free_port(), timeout_s=2))

    with pytest.raises(TransientDeliveryFailure):
        await mailer.send(email_to("owner@example.com"))
