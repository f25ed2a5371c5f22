"""Log redaction: every processor secret shape is removed, wherever it hides; ordinary words stay."""

from __future__ import annotations

import pytest
from contracts.runtime.logging import REDACTED, redact, redact_text

CHARGEBEE_TEST_KEY = "test_" + "SandboxAcmeChargebeeKey0000000000acme"
CHARGEBEE_LIVE_KEY = "live_" + "cdvLdNJ8cuNXzaC9cuKtLmTwEcdc4mGM"
STRIPE_SECRET_KEY = "sk_" + "test_51SandboxAcmeSecretKey000000000000000000acme"
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "secret", [CHARGEBEE_TEST_KEY, CHARGEBEE_LIVE_KEY, STRIPE_SECRET_KEY, WEBHOOK_SECRET]
)
def test_a_processor_secret_in_free_text_is_redacted(secret: str) -> None:
    text = f"processor refused the key {secret}: 401"

    assert redact_text(text) == f"processor refused the key {REDACTED}: 401"


def test_a_chargebee_key_in_a_url_is_redacted() -> None:
    text = f"GET https://acme-test.chargebee.com/api/v2/customers?key={CHARGEBEE_LIVE_KEY}&limit=1"

    assert CHARGEBEE_LIVE_KEY not in redact_text(text)


def test_a_chargebee_key_nested_under_an_innocent_field_is_redacted() -> None:
    event = {"detail": {"items": [f"site acme uses {CHARGEBEE_TEST_KEY}"]}, "count": 3}

    assert redact(event) == {"detail": {"items": [f"site acme uses {REDACTED}"]}, "count": 3}


@pytest.mark.parametrize(
    "text",
    ["test_connect_chargebee_site_with_a_long_name", "import of acme-test completed", "latest_import"],
)
def test_ordinary_names_that_start_like_a_key_are_kept(text: str) -> None:
    assert redact_text(text) == text
