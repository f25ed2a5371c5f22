"""Which source, pace and key a stored connection gets."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from contracts.connections import ConnectionStatus, ProcessorCredentials, StoredConnection
from contracts.events import Mode, Processor
from importer.adapters.chargebee_source import ChargebeeSource
from importer.adapters.rate_budget import LocalRateBudget, RateLimits
from importer.adapters.sources import ProcessorLimits, build_source, chargebee_account_key, stripe_account_key
from importer.adapters.stripe_source import StripeSource
from pydantic import SecretStr

from sandbox import live_stripe_key

CREDENTIALS = ProcessorCredentials(api_key=SecretStr(live_stripe_key()))


def stored(processor: Processor | None, **fields: object) -> StoredConnection:
    return StoredConnection.model_validate(
        {
            "_id": "conn_1",
            "account_id": "acct_42",
            "processor": processor,
            "status": ConnectionStatus.CONNECTED,
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            **fields,
        }
    )


def build(connection: StoredConnection) -> object:
    return build_source(
        connection,
        CREDENTIALS,
        stripe_api_base="https://api.stripe.test",
        chargebee_url_template="https://{site}.chargebee.test/api/v2",
        rate_budget=LocalRateBudget(),
        http=httpx.AsyncClient(),
    )


def test_budgets_are_per_stripe_account_and_mode_and_per_chargebee_site() -> None:
    live = stored(Processor.STRIPE, mode=Mode.LIVE, processor_account_id="acct_1Abc")
    test = stored(Processor.STRIPE, mode=Mode.TEST, processor_account_id="acct_1Abc")
    site = stored(Processor.CHARGEBEE, mode=Mode.TEST, site="acme-test")

    assert stripe_account_key(live) == "stripe:acct_1Abc:live"
    assert stripe_account_key(test) == "stripe:acct_1Abc:test"
    assert chargebee_account_key(site) == "chargebee:acme-test"


def test_published_limits_with_headroom() -> None:
    limits = ProcessorLimits()

    live, test = limits.stripe(Mode.LIVE), limits.stripe(Mode.TEST)
    assert [live.per_s, live.endpoint_per_s] == pytest.approx([97.0, 24.25])
    assert [test.per_s, test.endpoint_per_s] == pytest.approx([24.25, 9.7])
    assert limits.chargebee().per_s == pytest.approx(150 / 60 * 0.97)
    assert ProcessorLimits(chargebee_per_minute=1000, headroom=1.0).chargebee() == RateLimits(1000 / 60)


def test_the_processor_picks_the_source_and_its_resources() -> None:
    stripe = build(stored(Processor.STRIPE, mode=Mode.LIVE, processor_account_id="acct_1Abc"))
    legacy = build(stored(Processor.CHARGEBEE, site="acme", product_catalog="1.0"))
    current = build(stored(Processor.CHARGEBEE, site="acme", product_catalog="2.0"))

    assert isinstance(stripe, StripeSource)
    assert isinstance(legacy, ChargebeeSource)
    assert isinstance(current, ChargebeeSource)
    assert stripe.resources() == (
        "customers",
        "products",
        "prices",
        "plans",
        "coupons",
        "subscriptions",
        "invoices",
    )
    assert legacy.resources()[-2:] == ("plans", "addons")
    assert current.resources()[-2:] == ("items", "item_prices")


def test_connections_that_cannot_be_read_are_refused() -> None:
    with pytest.raises(ValueError, match="no processor"):
        build(stored(None))
    with pytest.raises(ValueError, match="site"):
        build(stored(Processor.CHARGEBEE))
