"""What the contact reads: both parts of both emails, in plain words, with nothing injected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.adapters.smtp_mailer import build_message
from notifier.domain import wording
from notifier.domain.notices import (
    EmailAddress,
    EmailIdentity,
    EmailKind,
    ImportCompletedNotice,
    ImportFailedNotice,
    InvalidAddress,
    OutgoingEmail,
)
from notifier_fakes import T0

APP_URL = "https://app.example.com/dashboard"
renderer = JinjaEmailRenderer(app_url=APP_URL)


def completed(**overrides: object) -> ImportCompletedNotice:
    fields: dict[str, object] = {
        "account_id": "acct-1",
        "import_id": "imp-1",
        "to": EmailAddress("owner@example.com"),
        "processor": "chargebee",
        "resources": {"invoices": 18230, "customers": 1204, "subscriptions": 1530, "coupons": 3},
        "past_cancellations": 312,
        "started_at": T0 - timedelta(minutes=4, seconds=10),
        "finished_at": T0,
    }
    fields.update(overrides)
    return ImportCompletedNotice(**fields)  # type: ignore[arg-type]


def failed(
    code: str, processor: str | None = "stripe", message: str = "Stripe answered 401"
) -> ImportFailedNotice:
    return ImportFailedNotice(
        account_id="acct-1",
        import_id="imp-9",
        to=EmailAddress("owner@example.com"),
        code=code,
        message=message,
        processor=processor,
    )


def test_the_completed_subject_names_the_processor_and_says_the_import_is_complete() -> None:
    assert renderer.render(completed()).subject == "Your Chargebee import is complete"


@pytest.mark.parametrize("part", ["text", "html"])
def test_both_parts_carry_the_counts_the_cancellations_and_the_link(part: str) -> None:
    body = getattr(renderer.render(completed()), part)

    for label, count in [
        ("Customers", "1,204"),
        ("Subscriptions", "1,530"),
        ("Invoices", "18,230"),
        ("Coupons", "3"),
    ]:
        assert label in body
        assert count in body
    assert "312 past cancellations" in body
    assert "20,967 records" in body
    assert "4 minutes" in body
    assert APP_URL in body
    assert "churn metrics" in body
    assert "churn-prevention offers" in body


def test_resources_read_in_the_order_a_person_expects_and_new_ones_come_last() -> None:
    text = renderer.render(completed(resources={"widgets": 2, "invoices": 5, "customers": 1})).text

    assert text.index("Customers") < text.index("Invoices") < text.index("Widgets")


def test_the_html_part_links_to_the_app() -> None:
    html = renderer.render(completed()).html

    assert f'href="{APP_URL}"' in html


def test_no_past_cancellations_reads_naturally() -> None:
    text = renderer.render(completed(past_cancellations=0)).text

    assert "no past cancellations (0)" in text
    assert "0 past cancellations:" not in text


def test_one_past_cancellation_is_singular() -> None:
    assert "1 past cancellation:" in renderer.render(completed(past_cancellations=1)).text


@pytest.mark.parametrize("part", ["text", "html"])
def test_a_revoked_key_is_explained_with_what_to_do(part: str) -> None:
    email = renderer.render(failed("key_rejected"))
    body = getattr(email, part)

    assert email.subject == "Your Stripe import did not finish"
    assert "revoked" in body
    assert "Reconnect Stripe" in body
    assert APP_URL in body
    assert "key_rejected" in body  # for support, after the plain words


def test_a_passing_outage_asks_to_try_again_later_not_to_reconnect() -> None:
    text = renderer.render(failed("processor_unavailable")).text

    assert "Start the import again" in text
    assert "Reconnect" not in text


def test_an_unknown_code_without_a_processor_still_reads_well() -> None:
    email = renderer.render(failed("internal_error", processor=None))

    assert email.subject == "Your billing import did not finish"
    assert "from your payment processor" in email.text
    assert "None" not in email.text


def test_values_from_events_cannot_inject_markup_into_the_html_part() -> None:
    html = renderer.render(failed("boom", message='<img src=x onerror="alert(1)">')).html

    assert "<img" not in html
    assert "&lt;img" in html


def test_the_wire_message_has_both_parts_and_a_stable_message_id() -> None:
    notice = completed()
    email = OutgoingEmail(
        sender=EmailAddress("no-reply@mail.example.com"),
        to=notice.to,
        message_id=notice.identity.message_id("mail.example.com"),
        content=renderer.render(notice),
    )

    message = build_message(email)

    assert message["Message-ID"] == "<import-imp-1.completed@mail.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


def test_an_import_id_with_odd_characters_still_makes_a_valid_message_id() -> None:
    notice = completed(import_id="imp 1/<x>")

    assert notice.identity.message_id("example.com") == "<import-imp_1__x_.completed@example.com>"


@pytest.mark.parametrize(
    "address", ["", "owner", "owner@", "@example.com", "a b@example.com", "owner@example.com\r\nBcc: x@y.z"]
)
def test_an_address_no_server_could_take_is_refused_before_any_send(address: str) -> None:
    with pytest.raises(InvalidAddress):
        EmailAddress(address)


def test_receipt_ids_are_stable_per_import_and_kind() -> None:
    assert completed().identity.receipt_event_id == completed().identity.receipt_event_id
    assert (
        EmailIdentity("imp-1", EmailKind.IMPORT_COMPLETED).receipt_event_id
        != EmailIdentity("imp-1", EmailKind.IMPORT_FAILED).receipt_event_id
    )


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (20, "under a minute"),
        (60, "1 minute"),
        (250, "4 minutes"),
        (7500, "2 hours 5 minutes"),
        (3600, "1 hour"),
    ],
)
def test_durations_read_like_a_person_would_say_them(seconds: int, expected: str) -> None:
    assert wording.format_duration(timedelta(seconds=seconds)) == expected


def test_processors_and_resources_have_readable_names() -> None:
    assert wording.processor_name("stripe") == "Stripe"
    assert wording.processor_name("chargebee") == "Chargebee"
    assert wording.resource_label("prices") == "Prices and plans"
    assert wording.resource_label("payment_sources") == "Payment sources"
