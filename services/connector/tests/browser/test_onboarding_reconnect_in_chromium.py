"""Reconnecting on the onboarding page in headless Chromium, against the real services and the
sandbox processors: a Chargebee connection whose key was rolled shows what happened, keeps its
history, and its reconnect form (the site filled in) brings it back to connected in place.

The connection is put into ``needs_reconnect`` through the store, as the lifecycle does on a 401.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from accessibility_kit import accessibility_problems
from onboarding_browser_kit import IMPORT_TIMEOUT_MS, OnboardingStack, Screenshots
from playwright.async_api import Page, expect
from pymongo import MongoClient

from sandbox import SandboxAdmin


@pytest.fixture
def chargebee_admin(onboarding_stack: OnboardingStack) -> Iterator[SandboxAdmin]:
    """The fake Chargebee's admin API; its rolled key is put back afterwards."""
    template = onboarding_stack.sandbox.endpoints.chargebee_api_url_template
    admin = SandboxAdmin(template.split("/sites/", 1)[0])
    yield admin
    admin.reset()


async def api(
    stack: OnboardingStack, account_id: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.request(
            method,
            stack.url(f"/v1/accounts/{account_id}{path}"),
            headers={"Authorization": f"Bearer {stack.stack.jwt(account_id)}"},
            **kwargs,
        )


async def imported(stack: OnboardingStack, account_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + IMPORT_TIMEOUT_MS / 1000
    while True:
        connection: dict[str, Any] = (await api(stack, account_id, "GET", "/connection")).json()
        if (connection.get("latest_import") or {}).get("status") == "completed":
            return connection
        assert time.monotonic() < deadline, f"the import did not complete: {connection}"
        await asyncio.sleep(1)


def lose(stack: OnboardingStack, account_id: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(stack.settings.mongodb_url)
    try:
        client[stack.settings.mongodb_database]["connections"].update_one(
            {"account_id": account_id, "status": "connected"}, {"$set": {"status": "needs_reconnect"}}
        )
    finally:
        client.close()


async def test_a_chargebee_connection_whose_key_was_rolled_is_reconnected_on_the_page(
    page: Page,
    onboarding_stack: OnboardingStack,
    chargebee_admin: SandboxAdmin,
    account_id: str,
    screenshots: Screenshots,
) -> None:
    stack = onboarding_stack
    site = stack.sandbox.credentials.chargebee_site
    email = f"owner+{account_id}@example.com"
    connected = await api(
        stack,
        account_id,
        "POST",
        "/connections/chargebee",
        json={"site": site, "api_key": stack.sandbox.credentials.chargebee_api_key, "contact_email": email},
    )
    assert connected.status_code == 201, connected.text
    await imported(stack, account_id)
    new_key = chargebee_admin.roll_key(site=site)["key"]
    lose(stack, account_id)

    await page.goto(stack.link(account_id, contact_email=email))

    await expect(page.get_by_role("heading", level=1)).to_have_text("Reconnect Chargebee")
    status = page.locator("#reconnect-status")
    await expect(status).to_contain_text("no longer accepts the credentials")
    await expect(status).to_contain_text("Your history is kept.")
    await expect(page.get_by_label("Chargebee site name")).to_have_value(site)
    await expect(page.get_by_label("Email for notices")).to_have_value(email)
    assert await accessibility_problems(page) == []
    await screenshots.take(page, "reconnect-form")

    await page.get_by_label("New Chargebee API key").fill(new_key)
    await page.get_by_role("button", name="Reconnect Chargebee").click()

    # Back on the page, connected again: the history is the same one, so the import shown is the first.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Import complete")
    assert page.url == stack.url("/onboarding")
    assert await accessibility_problems(page) == []
    await screenshots.take(page, "reconnected")
    connection = (await api(stack, account_id, "GET", "/connection")).json()
    assert connection["status"] == "connected"
    assert connection["latest_import"]["import_id"] == connected.json()["import_id"]
