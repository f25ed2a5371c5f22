"""The onboarding page of a connection that needs reconnecting: what happened, the history kept, and
a reconnect form for its processor (the Chargebee site filled in) that reconnects it in place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector_fakes import CHARGEBEE_KEY, CHARGEBEE_SITE, STRIPE_KEY, STRIPE_RESTRICTED_KEY, World
from contracts.connections import ConnectionStatus
from contracts.events import ProcessorReconnected
from onboarding_page_kit import BASE_URL, browser_over, open_session, page_at, with_import_counts
from pydantic import SecretStr

ACCOUNT = "acct_onboarding_reconnect"
EMAIL = "owner@acme.example"
NEW_CHARGEBEE_KEY = "test_UnitAcmeChargebeeKey0000000000new2"


@pytest.fixture
async def browser(world: World) -> AsyncIterator[httpx.AsyncClient]:
    with_import_counts(world)
    async with browser_over(world) as client:
        yield client


async def lost_chargebee(world: World) -> str:
    connected = await connect_chargebee(
        world.deps,
        ChargebeeCredentialsSubmission(
            account_id=ACCOUNT, site=CHARGEBEE_SITE, api_key=SecretStr(CHARGEBEE_KEY), contact_email=EMAIL
        ),
    )
    world.connections.lose(connected.connection_id)
    return connected.connection_id


async def lost_stripe(browser: httpx.AsyncClient, world: World) -> str:
    form = await page_at(browser, "/onboarding/stripe")
    sent = await browser.post(
        "/onboarding/stripe",
        data={"csrf_token": form.csrf_token, "api_key": STRIPE_KEY, "contact_email": EMAIL},
    )
    state = parse_qs(urlsplit(sent.headers["location"]).query)["state"][0]
    world.stripe.grant("ac_first")
    await browser.get("/v1/oauth/stripe/callback", params={"state": state, "code": "ac_first"})
    connection = await world.connections.latest(ACCOUNT)
    assert connection is not None
    world.connections.lose(connection.connection_id)
    return connection.connection_id


async def test_a_lost_chargebee_connection_is_shown_with_its_reconnect_form(
    browser: httpx.AsyncClient, world: World
) -> None:
    await lost_chargebee(world)
    await open_session(browser, ACCOUNT)

    page = await page_at(browser, "/onboarding")

    assert "Reconnect Chargebee" in page.text
    assert "no longer accepts the credentials" in page.text
    assert "Your history is kept." in page.text
    fields = page.visible_inputs()
    assert fields["site"]["value"] == CHARGEBEE_SITE
    assert fields["api_key"]["type"] == "password"
    assert [form["action"] for form in page.forms()] == ["/onboarding/chargebee"]
    # The blank first-connect forms lead back here.
    assert (await browser.get("/onboarding/chargebee")).headers["location"] == "/onboarding"


async def test_the_chargebee_reconnect_form_reconnects_in_place(
    browser: httpx.AsyncClient, world: World
) -> None:
    connection_id = await lost_chargebee(world)
    await open_session(browser, ACCOUNT)
    form = await page_at(browser, "/onboarding")

    sent = await browser.post(
        "/onboarding/chargebee",
        data={
            "csrf_token": form.csrf_token,
            "site": form.visible_inputs()["site"]["value"],
            "api_key": NEW_CHARGEBEE_KEY,
            "contact_email": EMAIL,
        },
    )

    assert (sent.status_code, sent.headers["location"]) == (303, "/onboarding")
    connection = await world.connections.get(connection_id)
    assert connection is not None
    assert connection.status is ConnectionStatus.CONNECTED
    [reconnected] = world.publisher.events(ProcessorReconnected)
    assert isinstance(reconnected, ProcessorReconnected)
    assert reconnected.connection_id == connection_id
    page = await page_at(browser, "/onboarding")
    assert "Reconnect Chargebee" not in page.text


async def test_another_site_is_refused_on_the_reconnect_form(
    browser: httpx.AsyncClient, world: World
) -> None:
    connection_id = await lost_chargebee(world)
    await open_session(browser, ACCOUNT)
    form = await page_at(browser, "/onboarding")

    sent = await browser.post(
        "/onboarding/chargebee",
        data={
            "csrf_token": form.csrf_token,
            "site": "globex-test",
            "api_key": NEW_CHARGEBEE_KEY,
            "contact_email": EMAIL,
        },
    )

    # The answer is the reconnect form again, with the refusal above it.
    assert sent.status_code == 409
    assert "Reconnect Chargebee" in sent.text
    assert "same Chargebee account" in sent.text
    connection = await world.connections.get(connection_id)
    assert connection is not None
    assert connection.status is ConnectionStatus.NEEDS_RECONNECT


async def test_a_lost_stripe_connection_reconnects_through_stripe_and_back(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)
    connection_id = await lost_stripe(browser, world)
    page = await page_at(browser, "/onboarding")
    assert "Reconnect Stripe" in page.text
    assert "site" not in page.visible_inputs()

    sent = await browser.post(
        "/onboarding/stripe",
        data={"csrf_token": page.csrf_token, "api_key": STRIPE_RESTRICTED_KEY, "contact_email": EMAIL},
    )
    state = parse_qs(urlsplit(sent.headers["location"]).query)["state"][0]
    world.stripe.grant("ac_again")
    callback = await browser.get("/v1/oauth/stripe/callback", params={"state": state, "code": "ac_again"})

    assert callback.headers["location"] == f"{BASE_URL}/onboarding?status=connected"
    connection = await world.connections.get(connection_id)
    assert connection is not None
    assert connection.status is ConnectionStatus.CONNECTED
    assert "Stripe is connected." in (await page_at(browser, "/onboarding?status=connected")).text


async def test_denying_a_stripe_reconnect_says_so_and_offers_the_form_again(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)
    await lost_stripe(browser, world)
    page = await page_at(browser, "/onboarding")
    sent = await browser.post(
        "/onboarding/stripe",
        data={"csrf_token": page.csrf_token, "api_key": STRIPE_KEY, "contact_email": EMAIL},
    )
    state = parse_qs(urlsplit(sent.headers["location"]).query)["state"][0]
    await browser.get("/v1/oauth/stripe/callback", params={"state": state, "error": "access_denied"})

    page = await page_at(browser, "/onboarding?status=denied")

    assert "Stripe was not reconnected" in page.text
    assert "Reconnect Stripe" in page.text
