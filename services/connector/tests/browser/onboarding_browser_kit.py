"""Fixtures of the onboarding page's browser tests: Debian's Chromium driven by Playwright, real services.

The three services run as processes (one stack per module, tests keep apart by account) against the
session's Kafka, store, mail catcher and sandbox processors. Chromium is the system's
(``/usr/bin/chromium``, or ``$CHROMIUM_PATH``), never a browser Playwright downloads. Without it the
tests are skipped, except in CI (``CI=true``), where they fail. Screenshots of every step are kept
in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio
from devstack.infra import in_ci
from devstack.mailcatcher import MailCatcher
from devstack.paths import repo_root
from devstack.pytest_plugin import RunningSandbox
from devstack.settings import StackSecrets, StackSettings
from devstack.stack import ServiceStack
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

CHROMIUM_ENV: Final = "CHROMIUM_PATH"
DEFAULT_CHROMIUM: Final = "/usr/bin/chromium"
#: Quiet, offline, reproducible: no network of its own, no first-run screens, no sandbox (root in CI).
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOTS_DIR: Final = repo_root() / "artifacts" / "screenshots"
#: Long enough for a whole import of the sandbox's sample data on a 2-core machine.
IMPORT_TIMEOUT_MS: Final = 150_000
ACTION_TIMEOUT_MS: Final = 20_000


def chromium_executable() -> str:
    configured = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    found = shutil.which(configured)
    if found is None:
        reason = f"no Chromium at {configured} (apt-get install chromium, or set {CHROMIUM_ENV})"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


@pytest_asyncio.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest_asyncio.fixture(scope="session")
async def chromium(playwright: Playwright) -> AsyncIterator[Browser]:
    """One headless Chromium for the session; Playwright gives it a fresh, temporary profile."""
    browser = await playwright.chromium.launch(
        executable_path=chromium_executable(), headless=True, args=list(CHROMIUM_ARGS)
    )
    try:
        yield browser
    finally:
        await browser.close()


@dataclass(frozen=True)
class OnboardingStack:
    """The services of one test module, and how to mint the links a gateway would hand out."""

    stack: ServiceStack
    settings: StackSettings
    sandbox: RunningSandbox
    mail: MailCatcher

    def url(self, path: str = "") -> str:
        return self.stack.url("connector", path)

    def link(self, account_id: str, *, contact_email: str | None = None) -> str:
        from connector.entrypoints.onboarding_session import mint_onboarding_link

        return mint_onboarding_link(
            self.settings.secrets.api_jwt_secret,
            account_id,
            base_url=self.url(),
            contact_email=contact_email,
        )


@pytest.fixture(scope="module")
def onboarding_stack(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    mongodb_url: str,
    smtp_catcher: MailCatcher,
    stack_secrets: StackSecrets,
    sandbox_processors: RunningSandbox,
    devstack_log_dir: Path,
) -> Iterator[OnboardingStack]:
    settings = StackSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=f"t_onboarding_page_{uuid.uuid4().hex[:8]}",
        smtp_host=smtp_catcher.host,
        smtp_port=smtp_catcher.smtp_port,
        secrets=stack_secrets,
        sandbox=sandbox_processors.endpoints,
        credentials=sandbox_processors.credentials,
    )
    logs = devstack_log_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    with ServiceStack(settings, logs).start() as stack:
        yield OnboardingStack(stack, settings, sandbox_processors, smtp_catcher)
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(settings.mongodb_database)
    finally:
        client.close()


@pytest.fixture
def account_id(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[:40]
    return f"acct_{stem}_{uuid.uuid4().hex[:6]}"


class Screenshots:
    """Numbered screenshots of one test: ``artifacts/screenshots/<test>/<nn>-<step>.png``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []

    async def take(self, page: Page, step: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{len(self.taken) + 1:02d}-{step}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    folder = SCREENSHOTS_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    return Screenshots(folder)


def _browser_context_options(javascript: bool) -> dict[str, Any]:
    return {"java_script_enabled": javascript, "viewport": {"width": 900, "height": 900}, "locale": "en-US"}


@pytest_asyncio.fixture
async def browser_context(chromium: Browser, request: pytest.FixtureRequest) -> AsyncIterator[BrowserContext]:
    """A fresh context (no cookies); ``@pytest.mark.parametrize("javascript", ...)`` may turn JS off."""
    javascript = getattr(request, "param", True)
    context = await chromium.new_context(**_browser_context_options(javascript))
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context
    finally:
        await context.close()


@pytest_asyncio.fixture
async def page(browser_context: BrowserContext) -> AsyncIterator[Page]:
    page = await browser_context.new_page()
    yield page
