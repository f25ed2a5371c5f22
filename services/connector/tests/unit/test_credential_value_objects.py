"""Keys and site names are refused before any request leaves the service."""

from __future__ import annotations

import pytest
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite, StripeApiKey, StripeKeyKind
from connector.domain.refusals import ConnectionRefused, RefusalCode
from contracts.events import Mode

#: Live-mode key shapes are assembled at run time: no live-looking key is ever committed.
LIVE_KEY_BODY = "live_" + "51AbCdEfGh0123456789"


@pytest.mark.parametrize(
    ("raw", "kind", "mode"),
    [
        ("sk_" + LIVE_KEY_BODY, StripeKeyKind.SECRET, Mode.LIVE),
        ("sk_test_51AbCdEfGh0123456789", StripeKeyKind.SECRET, Mode.TEST),
        ("rk_" + LIVE_KEY_BODY, StripeKeyKind.RESTRICTED, Mode.LIVE),
        (" rk_test_51AbCdEfGh0123456789\n", StripeKeyKind.RESTRICTED, Mode.TEST),
    ],
)
def test_secret_and_restricted_stripe_keys_are_accepted_with_their_mode(
    raw: str, kind: StripeKeyKind, mode: Mode
) -> None:
    key = StripeApiKey.parse(raw)

    assert (key.kind, key.mode) == (kind, mode)
    assert key.reveal() == raw.strip()
    assert raw.strip() not in repr(key)


@pytest.mark.parametrize("raw", ["pk_live_51AbCdEfGh0123456789", "pk_test_51AbCdEfGh0123456789"])
def test_a_publishable_key_has_its_own_refusal(raw: str) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        StripeApiKey.parse(raw)

    assert refused.value.code is RefusalCode.PUBLISHABLE_KEY
    assert raw not in refused.value.message


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "sk_prod_51AbCdEfGh0123456789",
        "whsec_51AbCdEfGh0123456789",
        "sk_test_",
        "sk_test_abc def ghi jkl",
        "sk_test_51AbCdEfGh\r\nX-Injected: yes",
        "rk_live_" + "a" * 300,
        "acct_1AbCdEf",
    ],
)
def test_anything_else_is_not_a_stripe_key(raw: str) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        StripeApiKey.parse(raw)

    assert refused.value.code is RefusalCode.INVALID_KEY_FORMAT


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("acme", Mode.LIVE),
        ("acme-test", Mode.TEST),
        ("a", Mode.LIVE),
        ("acme-2-eu-test", Mode.TEST),
        ("9" * 63, Mode.LIVE),
    ],
)
def test_chargebee_site_names_are_dns_labels_and_test_sites_end_in_test(raw: str, mode: Mode) -> None:
    assert ChargebeeSite.parse(raw).mode is mode


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "Acme",
        "-acme",
        "acme-",
        "a" * 64,
        "acme.evil.example",
        "evil.example/",
        "acme@evil.example",
        "127.0.0.1",
        "acme:8080",
        "acme/../admin",
        "acme#",
        "acme?x=1",
        "acme test",
        "ac\u0430me",
        "acme\n",
    ],
)
def test_anything_else_is_not_a_site_name(raw: str) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        ChargebeeSite.parse(raw)

    assert refused.value.code is RefusalCode.INVALID_SITE


@pytest.mark.parametrize(
    "raw",
    [
        "short",
        "test_key with space",
        "test_key:colon00",
        "live_\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
    ],
)
def test_chargebee_keys_must_be_plain_tokens(raw: str) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        ChargebeeApiKey.parse(raw)

    assert refused.value.code is RefusalCode.INVALID_KEY_FORMAT
