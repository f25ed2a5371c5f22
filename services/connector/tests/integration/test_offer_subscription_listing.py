"""The offer adapters' short list of live subscriptions (the onboarding page's offers demo), through
the official SDKs against the sandbox's fake Stripe and Chargebee over HTTP."""

from __future__ import annotations

import httpx
import pytest
from connector.adapters.chargebee_writes import ChargebeeOffers
from connector.adapters.stripe_writes import StripeOffers
from connector_integration_kit import Processors

from sandbox import SAMPLE_CHARGEBEE_KEY, SAMPLE_CHARGEBEE_SITE, SAMPLE_STRIPE_KEY

pytestmark = pytest.mark.infra


async def test_stripe_lists_a_few_subscriptions_that_have_not_ended(processors: Processors) -> None:
    stripe = StripeOffers(SAMPLE_STRIPE_KEY, api_base=processors.running.stripe_url, timeout_s=10)

    listed = await stripe.live_subscriptions(5)

    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            f"{processors.running.stripe_url}/v1/subscriptions",
            params={"limit": 5},
            headers={"Authorization": f"Bearer {SAMPLE_STRIPE_KEY}"},
        )
    expected = answer.json()["data"]
    assert [s.subscription_id for s in listed] == [s["id"] for s in expected]
    assert len(listed) == 5
    assert all(not s.ended and s.currency for s in listed)


async def test_chargebee_lists_a_few_subscriptions_that_are_not_cancelled(processors: Processors) -> None:
    api_url = processors.running.chargebee_url_template.replace("{site}", SAMPLE_CHARGEBEE_SITE)
    chargebee = ChargebeeOffers(
        SAMPLE_CHARGEBEE_KEY, site=SAMPLE_CHARGEBEE_SITE, api_url=api_url, catalog="2.0", timeout_s=10
    )

    listed = await chargebee.live_subscriptions(5)

    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            f"{api_url}/subscriptions",
            params={"limit": 5, "status[is_not]": "cancelled"},
            auth=(SAMPLE_CHARGEBEE_KEY, ""),
        )
    expected = answer.json()["list"]
    assert [s.subscription_id for s in listed] == [e["subscription"]["id"] for e in expected]
    assert len(listed) == 5
    assert all(s.status != "cancelled" for s in listed)
    assert any(s.mrr(chargebee.processor, "acct_listing") > 0 for s in listed)
