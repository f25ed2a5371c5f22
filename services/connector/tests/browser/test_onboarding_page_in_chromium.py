"""The onboarding page in headless Chromium, against the real services and the sandbox processors.

Each test opens the page the way a gateway would send a person to it (a signed link), then clicks
and types like that person. Screenshots of every step land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from accessibility_kit import accessibility_problems, focused, tab_order, tab_to
from onboarding_browser_kit import IMPORT_TIMEOUT_MS, OnboardingStack, Screenshots
from playwright.async_api import Page, expect

from sandbox import (
    SAMPLE_CHARGEBEE_BLOCKED_SITE,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_LIMITED_KEY,
    SAMPLE_STRIPE_PUBLISHABLE_KEY,
    SandboxAdmin,
)

#: Long enough to see the import half done, short next to the importer's 30 s request timeout.
INVOICES_DELAY_S = 12.0
HALF_DONE_WAIT_MS = int(INVOICES_DELAY_S * 1000)


def chargebee_admin(stack: OnboardingStack) -> SandboxAdmin:
    return SandboxAdmin(stack.sandbox.endpoints.chargebee_api_url_template.split("/sites/", 1)[0])


def email_for(account_id: str) -> str:
    return f"owner+{account_id}@example.com"


async def listed(stack: OnboardingStack, processor: str, resource: str) -> int:
    """How many objects of ``resource`` the fake processor serves: what a complete import shows."""
    credentials = stack.sandbox.credentials
    async with httpx.AsyncClient(timeout=10) as http:
        if processor == "chargebee":
            base = stack.sandbox.endpoints.chargebee_api_url_template.replace(
                "{site}", credentials.chargebee_site
            )
            auth: Any = (credentials.chargebee_api_key, "")
            total, offset = 0, None
            while True:
                params = {"limit": "100", **({"offset": offset} if offset else {})}
                body = (
                    (await http.get(f"{base}/{resource}", params=params, auth=auth)).raise_for_status().json()
                )
                total += len(body["list"])
                offset = body.get("next_offset")
                if not offset:
                    return total
        headers = {"Authorization": f"Bearer {credentials.stripe_api_key}"}
        total, after = 0, None
        while True:
            params = {"limit": "100", **({"starting_after": after} if after else {})}
            answer = await http.get(
                f"{stack.sandbox.endpoints.stripe_api_base}/v1/{resource}", params=params, headers=headers
            )
            body = answer.raise_for_status().json()
            total += len(body["data"])
            if not body["has_more"]:
                return total
            after = body["data"][-1]["id"]


async def count_shown(page: Page, resource: str) -> int:
    text = await page.locator(f'td[data-resource="{resource}"]').inner_text()
    return int(text.replace(",", ""))


async def assert_accessible(page: Page) -> None:
    assert await accessibility_problems(page) == []


async def connection_of(stack: OnboardingStack, account_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            stack.url(f"/v1/accounts/{account_id}/connection"),
            headers={"Authorization": f"Bearer {stack.stack.jwt(account_id)}"},
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_chargebee_with_the_keyboard_alone_connects_shows_progress_and_completes(
    page: Page, onboarding_stack: OnboardingStack, account_id: str, screenshots: Screenshots
) -> None:
    stack, email = onboarding_stack, email_for(account_id)
    customers = await listed(stack, "chargebee", "customers")
    subscriptions = await listed(stack, "chargebee", "subscriptions")

    await page.goto(stack.link(account_id, contact_email=email))

    assert page.url == stack.url("/onboarding")  # the token left the address bar
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connect your payment processor")
    await assert_accessible(page)
    await screenshots.take(page, "choose")
    order = [element["name"] for element in await tab_order(page)]
    assert order[:4] == ["Skip to the main content", "Connect Stripe", "Connect Chargebee", "Skip this step"]
    await page.goto(stack.url("/onboarding"))

    await tab_to(page, "Connect Chargebee")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connect Chargebee")
    await expect(page.get_by_label("Email for the import summary")).to_have_value(email)
    await assert_accessible(page)
    await tab_to(page, "Chargebee site name")
    await page.keyboard.type(stack.sandbox.credentials.chargebee_site)
    await tab_to(page, "Chargebee API key")
    await page.keyboard.type(stack.sandbox.credentials.chargebee_api_key)
    await screenshots.take(page, "chargebee-form")
    # The importer's first page of invoices takes a while, so the import is seen half done. Faults
    # are served in order: the connector's own look at invoices (whether the key may read them)
    # takes the first, harmless one.
    chargebee = chargebee_admin(stack)
    chargebee.add_fault("/invoices", delay_s=0.01, count=1)
    chargebee.add_fault("/invoices", delay_s=INVOICES_DELAY_S, count=1)
    try:
        await page.keyboard.press("Enter")

        heading = page.get_by_role("heading", level=1)
        await expect(heading).to_have_text("Importing your Chargebee billing history")
        await page.evaluate("() => { window.stillTheSamePage = true; }")
        await expect(page.get_by_role("table")).to_contain_text("Customers", timeout=HALF_DONE_WAIT_MS)
        await expect(page.locator("caption")).to_have_text("Imported so far")
        await expect(heading).to_have_text("Importing your Chargebee billing history")
        await expect(page.get_by_text(f"You can leave this page: we will email {email}")).to_be_visible()
        await screenshots.take(page, "progress")

        await expect(heading).to_have_text("Import complete", timeout=IMPORT_TIMEOUT_MS)
    finally:
        chargebee.clear_faults()

    # The script brought the news in place: no reload happened.
    assert await page.evaluate("() => window.stillTheSamePage === true")
    assert await count_shown(page, "customers") == customers
    assert await count_shown(page, "subscriptions") == subscriptions
    await expect(page.get_by_text("Past cancellations found:")).to_be_visible()
    await expect(
        page.get_by_text(f"A summary is on its way to {email}. You can close this page.")
    ).to_be_visible()
    assert await page.title() == "Import complete · Billing import"
    await assert_accessible(page)
    await screenshots.take(page, "complete")
    [message] = await stack.mail.wait_for_messages_async(1, to=email, timeout_s=60)
    assert "Chargebee" in message.subject


@pytest.mark.parametrize("browser_context", [False], ids=["javascript off"], indirect=True)
async def test_without_javascript_the_forms_work_and_the_page_refreshes_itself(
    page: Page, onboarding_stack: OnboardingStack, account_id: str, screenshots: Screenshots
) -> None:
    stack = onboarding_stack
    await page.goto(stack.link(account_id))
    await page.get_by_role("link", name="Connect Chargebee").click()
    await page.get_by_label("Chargebee site name").fill("Acme Test")
    await page.get_by_label("Chargebee API key").fill(stack.sandbox.credentials.chargebee_api_key)
    await page.get_by_label("Email for the import summary").fill(email_for(account_id))
    await page.get_by_role("button", name="Connect Chargebee").click()

    site = page.get_by_label("Chargebee site name")
    await expect(page.get_by_role("alert")).to_contain_text("Enter your Chargebee site name")
    await expect(site).to_have_attribute("aria-invalid", "true")
    await expect(site).to_be_focused()
    await screenshots.take(page, "site-refused")

    await site.fill(stack.sandbox.credentials.chargebee_site)
    await page.get_by_label("Chargebee API key").fill(stack.sandbox.credentials.chargebee_api_key)
    await page.get_by_role("button", name="Connect Chargebee").click()
    # The webhook credentials, this once; the page that refreshes itself is one link on.
    await expect(page.get_by_role("heading", name="Chargebee is connected")).to_be_visible()
    await expect(page.get_by_text("shown only this once")).to_be_visible()
    await screenshots.take(page, "webhook-credentials")
    await page.get_by_role("link", name="Continue to the import's progress").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile("Importing your Chargebee billing history|Import complete")
    )
    await expect(page.get_by_role("heading", name="Chargebee is connected")).to_have_count(0)
    await screenshots.take(page, "progress")

    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Import complete", timeout=IMPORT_TIMEOUT_MS
    )
    assert await count_shown(page, "customers") == await listed(stack, "chargebee", "customers")
    await screenshots.take(page, "complete")


async def test_a_stripe_key_goes_to_stripe_to_authorize_then_back_here_to_the_complete_import(
    page: Page, onboarding_stack: OnboardingStack, account_id: str, screenshots: Screenshots
) -> None:
    stack = onboarding_stack
    await page.goto(stack.link(account_id, contact_email=email_for(account_id)))
    await page.get_by_role("link", name="Connect Stripe").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connect Stripe")
    await assert_accessible(page)
    await page.get_by_label("Stripe secret key").fill(SAMPLE_STRIPE_KEY)
    await screenshots.take(page, "stripe-form")
    await page.get_by_role("button", name="Continue to Stripe").click()

    await expect(page.get_by_role("button", name="Authorize access")).to_be_visible()
    assert page.url.startswith(f"{stack.sandbox.endpoints.stripe_connect_base}/oauth/authorize?")
    await screenshots.take(page, "stripe-authorize")
    await page.get_by_role("button", name="Authorize access").click()

    await expect(page.get_by_text("Stripe is connected.")).to_be_visible()
    assert page.url == stack.url("/onboarding?status=connected")
    await screenshots.take(page, "back-connected")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Import complete", timeout=IMPORT_TIMEOUT_MS
    )
    assert await count_shown(page, "customers") == await listed(stack, "stripe", "customers")
    assert await count_shown(page, "subscriptions") > 0
    await assert_accessible(page)
    await screenshots.take(page, "complete")
    assert (await connection_of(stack, account_id))["processor"] == "stripe"


async def test_denying_on_stripe_comes_back_saying_so_with_the_choices(
    page: Page, onboarding_stack: OnboardingStack, account_id: str, screenshots: Screenshots
) -> None:
    stack = onboarding_stack
    await page.goto(stack.link(account_id, contact_email=email_for(account_id)))
    await page.get_by_role("link", name="Connect Stripe").click()
    await page.get_by_label("Stripe secret key").fill(SAMPLE_STRIPE_KEY)
    await page.get_by_role("button", name="Continue to Stripe").click()
    await page.get_by_role("button", name="Deny").click()

    await expect(page.get_by_role("alert")).to_contain_text("You did not allow access on Stripe")
    assert page.url == stack.url("/onboarding?status=denied")
    await expect(page.get_by_role("link", name="Connect Stripe")).to_be_visible()
    await expect(page.get_by_role("link", name="Skip this step")).to_be_visible()
    await assert_accessible(page)
    await screenshots.take(page, "denied")
    assert (await connection_of(stack, account_id))["status"] == "disconnected"


async def test_skip_lists_what_will_be_unavailable_and_asks_before_skipping(
    page: Page, onboarding_stack: OnboardingStack, account_id: str, screenshots: Screenshots
) -> None:
    stack = onboarding_stack
    await page.goto(stack.link(account_id))
    await page.get_by_role("link", name="Skip this step").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Skip connecting a processor?")
    for feature in ("Past cancellations", "Recovered revenue", "Coupon offers", "Trial extension offers"):
        await expect(page.get_by_role("listitem").filter(has_text=feature)).to_be_visible()
    await assert_accessible(page)
    await screenshots.take(page, "confirm")
    async with httpx.AsyncClient(timeout=10) as http:
        before = await http.get(
            stack.url(f"/v1/accounts/{account_id}/connection"),
            headers={"Authorization": f"Bearer {stack.stack.jwt(account_id)}"},
        )
    assert before.status_code == 404  # nothing happens until the person confirms

    await page.get_by_role("button", name="Skip and continue without them").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("You skipped connecting a processor")
    await screenshots.take(page, "skipped")
    connection = await connection_of(stack, account_id)
    assert connection["status"] == "skipped"
    assert connection["features"]["past_cancellations"] is False


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("sk_test_this is not a key", "This does not look like a Stripe API key"),
        (SAMPLE_STRIPE_PUBLISHABLE_KEY, "This is a publishable key"),
        ("sk_test_51SandboxNobodysKey000000000000000000000nobody", "Stripe did not accept this key"),
        (SAMPLE_STRIPE_LIMITED_KEY, "This restricted key cannot read invoices"),
    ],
    ids=["malformed", "publishable", "rejected", "under-permissioned"],
)
async def test_a_bad_stripe_key_shows_its_error_next_to_the_key(
    page: Page,
    onboarding_stack: OnboardingStack,
    account_id: str,
    screenshots: Screenshots,
    key: str,
    message: str,
) -> None:
    stack = onboarding_stack
    await page.goto(stack.link(account_id, contact_email=email_for(account_id)))
    await page.get_by_role("link", name="Connect Stripe").click()
    await page.get_by_label("Stripe secret key").fill(key)
    await page.get_by_role("button", name="Continue to Stripe").click()

    key_field = page.get_by_label("Stripe secret key")
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text(message)
    await expect(key_field).to_have_attribute("aria-invalid", "true")
    await expect(key_field).to_have_attribute("aria-describedby", "api_key-hint api_key-error")
    await expect(key_field).to_have_value("")
    await expect(key_field).to_be_focused()
    assert await alert.get_attribute("id") == "api_key-error"
    assert key not in await page.content()
    await assert_accessible(page)
    await screenshots.take(page, "refused")
    focus = await focused(page)
    assert focus is not None
    assert focus["outline"]


async def test_a_blocked_chargebee_site_shows_its_error_next_to_the_site(
    page: Page, onboarding_stack: OnboardingStack, account_id: str, screenshots: Screenshots
) -> None:
    stack = onboarding_stack
    await page.goto(stack.link(account_id, contact_email=email_for(account_id)))
    await page.get_by_role("link", name="Connect Chargebee").click()
    await page.get_by_label("Chargebee site name").fill(SAMPLE_CHARGEBEE_BLOCKED_SITE)
    await page.get_by_label("Chargebee API key").fill(stack.sandbox.credentials.chargebee_api_key)
    await page.get_by_role("button", name="Connect Chargebee").click()

    site = page.get_by_label("Chargebee site name")
    await expect(page.get_by_role("alert")).to_contain_text("Chargebee refuses access to this site")
    await expect(site).to_have_attribute("aria-invalid", "true")
    await expect(site).to_have_value(SAMPLE_CHARGEBEE_BLOCKED_SITE)
    await assert_accessible(page)
    await screenshots.take(page, "refused")


async def test_an_expired_or_forged_link_opens_nothing(
    page: Page, onboarding_stack: OnboardingStack, screenshots: Screenshots
) -> None:
    await page.goto(onboarding_stack.url("/onboarding?token=forged"))

    await expect(page.get_by_role("heading", level=1)).to_have_text("This link is not valid")
    assert await page.context.cookies() == []
    await screenshots.take(page, "invalid-link")
