"""The onboarding page's offers demo in headless Chromium, against the real services and the sandbox
processors: the sandbox's Chargebee site connected on the page, its import done, a coupon created and
applied to one of the listed subscriptions through the form, and the fake's subscription read back
over HTTP with the coupon on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from accessibility_kit import accessibility_problems
from onboarding_browser_kit import IMPORT_TIMEOUT_MS, OnboardingStack, Screenshots
from playwright.async_api import Page, expect

from sandbox import SandboxAdmin


@pytest.fixture
def chargebee_admin(onboarding_stack: OnboardingStack) -> Iterator[SandboxAdmin]:
    """The fake Chargebee's admin API; the offer's changes are undone afterwards for other tests."""
    template = onboarding_stack.sandbox.endpoints.chargebee_api_url_template
    admin = SandboxAdmin(template.split("/sites/", 1)[0])
    yield admin
    admin.reset()


async def at_chargebee(stack: OnboardingStack, path: str) -> dict[str, Any]:
    """What the fake Chargebee answers for ``path`` of the sample site, over HTTP."""
    credentials = stack.sandbox.credentials
    base = stack.sandbox.endpoints.chargebee_api_url_template.replace("{site}", credentials.chargebee_site)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{base}{path}", auth=(credentials.chargebee_api_key, ""))
    answer: dict[str, Any] = response.raise_for_status().json()
    return answer


def minor_units(shown: str) -> int:
    """``USD 1,234.56`` as 123456."""
    return int(shown.split(" ", 1)[1].replace(",", "").replace(".", ""))


async def test_a_coupon_applied_on_the_page_changes_the_subscription_at_chargebee(
    page: Page,
    onboarding_stack: OnboardingStack,
    chargebee_admin: SandboxAdmin,
    account_id: str,
    screenshots: Screenshots,
) -> None:
    stack = onboarding_stack
    credentials = stack.sandbox.credentials
    await page.goto(stack.link(account_id, contact_email=f"owner+{account_id}@example.com"))
    await page.get_by_role("link", name="Connect Chargebee").click()
    await page.get_by_label("Chargebee site name").fill(credentials.chargebee_site)
    await page.get_by_label("Chargebee API key").fill(credentials.chargebee_api_key)
    await page.get_by_role("button", name="Connect Chargebee").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Import complete", timeout=IMPORT_TIMEOUT_MS
    )

    await page.get_by_role("link", name="Try a churn-prevention offer").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Try a churn-prevention offer")
    rows = page.locator("#subscriptions tbody tr")
    await expect(rows.first).to_be_visible()
    subscription_id = await rows.first.get_attribute("data-subscription")
    assert subscription_id
    field = page.locator("#coupon-subscription_id")
    await expect(field).to_have_value(subscription_id)  # the first listed, filled in
    assert await accessibility_problems(page) == []
    await screenshots.take(page, "offers")
    before = await at_chargebee(stack, f"/subscriptions/{subscription_id}")
    assert not before["subscription"].get("coupons")

    await page.get_by_label("Percent off (creates a coupon)").fill("20")
    await page.get_by_role("button", name="Apply the coupon").click()

    result = page.locator("#offer-result")
    await expect(result).to_contain_text("Coupon applied")
    await expect(result).to_contain_text(subscription_id)
    mrr_before = minor_units(await result.locator('[data-mrr="before"]').inner_text())
    mrr_after = minor_units(await result.locator('[data-mrr="after"]').inner_text())
    assert mrr_before > 0
    assert mrr_after == pytest.approx(mrr_before * 0.8, abs=1)
    assert await accessibility_problems(page) == []
    await screenshots.take(page, "coupon-applied")

    # At the fake Chargebee: the subscription carries the coupon the form created, 20% off forever.
    after = await at_chargebee(stack, f"/subscriptions/{subscription_id}")
    [applied] = after["subscription"]["coupons"]
    coupon = (await at_chargebee(stack, f"/coupons/{applied['coupon_id']}"))["coupon"]
    assert coupon["discount_type"] == "percentage"
    assert coupon["discount_percentage"] == 20
    assert coupon["duration_type"] == "forever"
    # And the connector kept it as the API lists it.
    async with httpx.AsyncClient(timeout=10) as http:
        listed = await http.get(
            stack.url(f"/v1/accounts/{account_id}/offers"),
            headers={"Authorization": f"Bearer {stack.stack.jwt(account_id)}"},
        )
    [offer] = listed.json()["items"]
    assert offer["offer_id"] == await result.get_attribute("data-offer-id")
    assert (offer["mrr_before"], offer["mrr_after"]) == (mrr_before, mrr_after)
