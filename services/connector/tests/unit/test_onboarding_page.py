"""The onboarding page over in-memory fakes: the signed link, the forms, Stripe's return, skip, progress."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.import_counts import record_import_counts
from connector.service.track_imports import track_import
from connector_fakes import (
    CHARGEBEE_KEY,
    CHARGEBEE_SITE,
    STRIPE_KEY,
    STRIPE_RESTRICTED_KEY,
    World,
)
from connector_unit_kit import JWT_SECRET, auth
from contracts.connections import ConnectionStatus
from contracts.events import (
    SKIP_DISABLED_FEATURES,
    ImportCompleted,
    ImportFailed,
    ImportProgressed,
    ImportRequested,
    ImportStarted,
    Processor,
    ProcessorConnected,
    ProcessorSkipped,
    ResourceCount,
)
from onboarding_page_kit import (
    BASE_URL,
    InMemoryImportCounts,
    Page,
    browser_over,
    link_for,
    open_session,
    page_at,
    signed,
    token_of,
    with_import_counts,
)

ACCOUNT = "acct_onboarding_1"
EMAIL = "owner@acme.example"


@pytest.fixture
async def browser(world: World) -> AsyncIterator[httpx.AsyncClient]:
    with_import_counts(world)
    async with browser_over(world) as client:
        yield client


async def connect_chargebee(browser: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = await page_at(browser, "/onboarding/chargebee")
    data = {
        "csrf_token": form.csrf_token,
        "site": CHARGEBEE_SITE,
        "api_key": CHARGEBEE_KEY,
        "contact_email": EMAIL,
        **fields,
    }
    return await browser.post("/onboarding/chargebee", data=data)


async def submit_stripe_key(browser: httpx.AsyncClient, api_key: str) -> httpx.Response:
    form = await page_at(browser, "/onboarding/stripe")
    return await browser.post(
        "/onboarding/stripe",
        data={"csrf_token": form.csrf_token, "api_key": api_key, "contact_email": EMAIL},
    )


# --- the signed link ---------------------------------------------------------------------------


async def test_a_signed_link_opens_a_session_and_takes_the_token_out_of_the_address(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.get(link_for(ACCOUNT).removeprefix(BASE_URL))

    assert response.status_code == 303
    assert response.headers["location"] == "/onboarding"
    assert response.headers["referrer-policy"] == "no-referrer"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("onboarding_session=")
    for attribute in ("HttpOnly", "SameSite=lax", "Path=/onboarding", "Secure"):
        assert attribute.lower() in cookie.lower()
    page = await page_at(browser, "/onboarding")
    assert "Connect your payment processor" in page.text
    assert ACCOUNT in page.text


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(signed({"sub": ACCOUNT}), id="an API bearer token"),
        pytest.param(signed({"sub": ACCOUNT, "aud": "onboarding", "exp": 1}), id="expired"),
        pytest.param(signed({"sub": ACCOUNT, "aud": "onboarding"}, secret="x" * 40), id="another secret"),
        pytest.param(signed({"sub": ACCOUNT, "aud": "onboarding-session"}), id="another audience"),
        pytest.param(signed({"aud": "onboarding"}), id="no account"),
        pytest.param(signed({"sub": "../../etc", "aud": "onboarding"}), id="not an account id"),
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param(signed({"sub": ACCOUNT, "aud": "onboarding"}), id="no link id"),
    ],
)
async def test_anything_but_a_valid_onboarding_link_opens_nothing(
    browser: httpx.AsyncClient, token: str
) -> None:
    response = await browser.get("/onboarding", params={"token": token})

    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "This link is not valid" in response.text
    assert (await browser.get("/onboarding")).status_code == 401


async def test_an_onboarding_link_is_no_api_token(browser: httpx.AsyncClient) -> None:
    token = token_of(link_for(ACCOUNT))

    response = await browser.get(
        f"/v1/accounts/{ACCOUNT}/connection", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 401


async def test_without_a_session_every_step_asks_for_a_new_link(browser: httpx.AsyncClient) -> None:
    for path in (
        "/onboarding",
        "/onboarding/stripe",
        "/onboarding/chargebee",
        "/onboarding/skip",
        "/onboarding/offers",
        "/onboarding/progress",
    ):
        page = await page_at(browser, path, status=401)
        assert "Your session has ended" in page.text
    for path in (
        "/onboarding/stripe",
        "/onboarding/chargebee",
        "/onboarding/skip",
        "/onboarding/import",
        "/onboarding/offers",
        "/onboarding/switch",
    ):
        response = await browser.post(path, data={"account_id": ACCOUNT, "csrf_token": "x"})
        assert response.status_code == 401


async def test_a_link_opens_the_page_once(browser: httpx.AsyncClient, world: World) -> None:
    link = link_for(ACCOUNT).removeprefix(BASE_URL)
    assert (await browser.get(link)).status_code == 303

    async with browser_over(world) as someone_else:
        response = await someone_else.get(link)

        assert response.status_code == 410
        assert "set-cookie" not in response.headers
        assert "This link was already used" in response.text
        assert (await someone_else.get("/onboarding")).status_code == 401
    # The browser that used it may follow it again (a reload, a second tab): it keeps its session.
    again = await browser.get(link)
    assert (again.status_code, again.headers["location"]) == (303, "/onboarding")
    assert "set-cookie" not in again.headers


async def test_another_accounts_link_never_quietly_replaces_the_session(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)
    attackers_link = link_for("acct_attacker").removeprefix(BASE_URL)

    response = await browser.get(attackers_link)

    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    choice = Page(response.text)
    assert "This link is for another account" in choice.text
    assert ACCOUNT in choice.text
    assert "acct_attacker" in choice.text
    # Still acting for the account of the session; the attacker's link was not spent either.
    page = await page_at(browser, "/onboarding")
    assert page.by_id("acting-for") is not None
    assert f"For account {ACCOUNT}" in " ".join(page.text.split())
    await connect_chargebee(browser)
    [connected] = world.publisher.events(ProcessorConnected)
    assert connected.account_id == ACCOUNT


async def test_switching_accounts_takes_the_sessions_own_form(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)
    other_link = link_for("acct_other_1")
    choice = Page((await browser.get(other_link.removeprefix(BASE_URL))).text)

    forged = await browser.post(
        "/onboarding/switch", data={"csrf_token": "guessed", "token": token_of(other_link)}
    )
    assert forged.status_code == 303
    assert "set-cookie" not in forged.headers
    assert f"For account {ACCOUNT}" in " ".join((await page_at(browser, "/onboarding")).text.split())

    chosen = await browser.post(
        "/onboarding/switch", data={"csrf_token": choice.csrf_token, "token": token_of(other_link)}
    )
    assert chosen.status_code == 303
    assert "set-cookie" in chosen.headers
    assert "For account acct_other_1" in " ".join((await page_at(browser, "/onboarding")).text.split())


async def test_a_session_cookie_not_minted_here_is_refused(browser: httpx.AsyncClient, world: World) -> None:
    # Signed with the API secret itself, as someone who holds an API token might try.
    forged = signed({"sub": ACCOUNT, "aud": "onboarding-session", "csrf": "c"}, secret=JWT_SECRET)
    browser.cookies.set("onboarding_session", forged, domain="connector.test", path="/onboarding")

    await page_at(browser, "/onboarding", status=401)
    response = await browser.post("/onboarding/skip", data={"csrf_token": "c"})

    assert response.status_code == 401
    assert world.publisher.events() == []


# --- Chargebee ---------------------------------------------------------------------------------


async def test_chargebee_connects_the_account_of_the_link_whatever_the_form_says(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)

    response = await connect_chargebee(browser, account_id="acct_someone_else")

    assert response.status_code == 200
    assert "Importing your Chargebee billing history" in response.text
    [connected] = world.publisher.events(ProcessorConnected)
    assert isinstance(connected, ProcessorConnected)
    assert connected.account_id == ACCOUNT
    assert connected.processor is Processor.CHARGEBEE
    assert connected.contact_email == EMAIL
    page = await page_at(browser, "/onboarding")
    assert "Importing your Chargebee billing history" in page.text
    assert f"we will email {EMAIL} when the import is done" in page.text


async def test_chargebee_webhook_credentials_are_shown_once_and_only_their_hash_is_kept(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)

    shown = Page((await connect_chargebee(browser)).text)

    connection = await world.connections.active(ACCOUNT)
    assert connection is not None
    assert connection.webhook_username is not None
    assert connection.webhook_password_sha256 is not None
    url = f"/v1/webhooks/chargebee/{connection.connection_id}"
    details = shown.text.split("Webhook URL", 1)[1]
    password = details.split("Password", 1)[1].split()[0]
    assert url in details
    assert connection.webhook_username in details
    assert hashlib.sha256(password.encode()).hexdigest() == connection.webhook_password_sha256
    assert "shown only this once" in shown.text
    # The page it leads on to (and any later visit) never shows it again.
    later = await page_at(browser, "/onboarding")
    assert "Importing your Chargebee billing history" in later.text
    assert password not in later.text
    assert "Webhook URL" not in later.text


async def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)

    response = await connect_chargebee(browser, csrf_token="from-another-page")

    assert response.status_code == 403
    assert world.publisher.events() == []
    assert await world.connections.latest(ACCOUNT) is None
    assert "This form is out of date" in " ".join(response.text.split())


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"site": "Acme Test"}, "site", "Enter your Chargebee site name"),
        ({"api_key": "short"}, "api_key", "does not look like a Chargebee API key"),
        ({"contact_email": "not-an-address"}, "contact_email", "Enter the email address"),
    ],
)
async def test_a_bad_chargebee_entry_is_explained_next_to_its_field(
    browser: httpx.AsyncClient, world: World, fields: dict[str, str], field: str, message: str
) -> None:
    await open_session(browser, ACCOUNT)

    response = await connect_chargebee(browser, **fields)

    assert response.status_code == 422
    page = page_of(response)
    [alert] = page.alerts
    assert message in alert
    described = page.visible_inputs()[field]
    assert described["aria-invalid"] == "true"
    assert f"{field}-error" in described["aria-describedby"].split()
    assert "autofocus" in described
    assert world.publisher.events() == []
    assert world.chargebee.calls == []
    # What was typed stays, except the key.
    assert page.visible_inputs()["api_key"]["value"] == ""
    assert page.visible_inputs()["site"]["value"] == fields.get("site", CHARGEBEE_SITE)


async def test_a_site_chargebee_does_not_know_is_shown_on_the_site_field(
    browser: httpx.AsyncClient, world: World
) -> None:
    world.chargebee.refusal = ConnectionRefused(RefusalCode.SITE_NOT_FOUND, "There is no such site.")
    await open_session(browser, ACCOUNT)

    response = await connect_chargebee(browser)

    assert response.status_code == 422
    page = page_of(response)
    assert page.alerts == ["Error: There is no such site."]
    assert "site-error" in page.visible_inputs()["site"]["aria-describedby"]


async def test_a_processor_that_does_not_answer_is_said_above_the_form(
    browser: httpx.AsyncClient, world: World
) -> None:
    world.chargebee.refusal = ConnectionRefused(
        RefusalCode.PROCESSOR_UNAVAILABLE, "Chargebee did not answer in time.", retry_after_s=7
    )
    await open_session(browser, ACCOUNT)

    response = await connect_chargebee(browser)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    page = page_of(response)
    assert page.alerts == ["We could not connect Chargebee did not answer in time."]
    assert all("aria-invalid" not in attributes for attributes in page.visible_inputs().values())


# --- Stripe ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "code", "message"),
    [
        ("sk_test_short!", "invalid_key_format", "does not look like a Stripe API key"),
        ("pk_test_51UnitAcmePublishable0000000000pubk", "publishable_key", "This is a publishable key"),
        ("sk_test_51UnitSomebodyElse000000000000000else", "key_rejected", "Stripe did not accept this key"),
        (STRIPE_RESTRICTED_KEY, "insufficient_permissions", "This restricted key cannot read invoices"),
    ],
)
async def test_a_stripe_key_problem_is_explained_next_to_the_key_and_never_echoed(
    browser: httpx.AsyncClient, world: World, api_key: str, code: str, message: str
) -> None:
    world.stripe.unreadable = ["invoices"]
    await open_session(browser, ACCOUNT)

    response = await submit_stripe_key(browser, api_key)

    assert response.status_code == 422
    assert api_key not in response.text
    page = page_of(response)
    [alert] = page.alerts
    assert message in alert
    key_input = page.visible_inputs()["api_key"]
    assert key_input["aria-describedby"].split() == ["api_key-hint", "api_key-error"]
    assert key_input["value"] == ""
    assert page.visible_inputs()["contact_email"]["value"] == EMAIL
    assert await world.connections.latest(ACCOUNT) is None


async def test_a_stripe_key_goes_to_stripe_and_comes_back_to_this_page_connected(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)

    response = await submit_stripe_key(browser, STRIPE_KEY)

    assert response.status_code == 303
    authorize_url = response.headers["location"]
    assert authorize_url.startswith("https://connect.stripe.test/oauth/authorize?")
    pending = await world.connections.latest(ACCOUNT)
    assert pending is not None
    assert pending.status is ConnectionStatus.AWAITING_AUTHORIZATION
    assert pending.return_url == f"{BASE_URL}/onboarding"
    # Stripe sends the browser to the callback, which sends it back here.
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    world.stripe.grant("ac_unit_code")
    callback = await browser.get("/v1/oauth/stripe/callback", params={"state": state, "code": "ac_unit_code"})
    assert callback.status_code == 303
    assert callback.headers["location"] == f"{BASE_URL}/onboarding?status=connected"

    page = await page_at(browser, "/onboarding?status=connected")

    assert "Stripe is connected." in page.text
    assert "Importing your Stripe billing history" in page.text


async def test_denying_on_stripe_says_so_and_offers_the_choices_again(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)
    authorize_url = (await submit_stripe_key(browser, STRIPE_KEY)).headers["location"]
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]

    callback = await browser.get(
        "/v1/oauth/stripe/callback", params={"state": state, "error": "access_denied"}
    )
    assert callback.headers["location"] == f"{BASE_URL}/onboarding?status=denied"
    page = await page_at(browser, "/onboarding?status=denied")

    [alert] = page.alerts
    assert "You did not allow access on Stripe" in alert
    assert "Connect Stripe" in page.text
    assert "Connect Chargebee" in page.text


async def test_the_page_believes_the_store_not_the_address_bar(browser: httpx.AsyncClient) -> None:
    await open_session(browser, ACCOUNT)

    page = await page_at(browser, "/onboarding?status=connected&code=<script>alert(1)</script>")

    assert "Stripe is connected" not in page.text
    assert "Connect your payment processor" in page.text
    assert "<script>alert" not in page.html


async def test_an_unknown_error_code_from_the_callback_is_not_repeated(browser: httpx.AsyncClient) -> None:
    await open_session(browser, ACCOUNT)

    page = await page_at(browser, "/onboarding?status=error&code=you_have_been_hacked")

    assert page.alerts == [
        "Stripe was not connected Stripe could not be connected. Please start the connection again."
    ]
    assert "hacked" not in page.html


async def test_a_stripe_key_left_unauthorized_is_mentioned(browser: httpx.AsyncClient) -> None:
    await open_session(browser, ACCOUNT)
    await submit_stripe_key(browser, STRIPE_KEY)

    page = await page_at(browser, "/onboarding")

    assert "You started connecting Stripe but did not authorize it there yet" in page.text


# --- Skip --------------------------------------------------------------------------------------


async def test_skip_says_what_will_be_unavailable_and_waits_for_a_confirmation(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT, contact_email=EMAIL)

    confirmation = await page_at(browser, "/onboarding/skip")

    for name in ("Past cancellations", "Recovered revenue", "Coupon offers", "Trial extension offers"):
        assert name in confirmation.text
    assert len(SKIP_DISABLED_FEATURES) == 4
    assert world.publisher.events() == []

    response = await browser.post("/onboarding/skip", data={"csrf_token": confirmation.csrf_token})

    assert response.status_code == 303
    [skipped] = world.publisher.events(ProcessorSkipped)
    assert isinstance(skipped, ProcessorSkipped)
    assert skipped.account_id == ACCOUNT
    assert skipped.contact_email == EMAIL
    page = await page_at(browser, "/onboarding")
    assert "You skipped connecting a processor" in page.text
    assert "Past cancellations" in page.text


async def test_skip_without_the_csrf_token_is_refused(browser: httpx.AsyncClient, world: World) -> None:
    await open_session(browser, ACCOUNT)

    response = await browser.post("/onboarding/skip", data={})

    assert response.status_code == 403
    assert world.publisher.events() == []


async def test_a_skipped_account_can_still_connect(browser: httpx.AsyncClient, world: World) -> None:
    await open_session(browser, ACCOUNT)
    confirmation = await page_at(browser, "/onboarding/skip")
    await browser.post("/onboarding/skip", data={"csrf_token": confirmation.csrf_token})

    response = await connect_chargebee(browser)

    assert response.status_code == 200
    connection = await world.connections.active(ACCOUNT)
    assert connection is not None
    assert connection.status is ConnectionStatus.CONNECTED


# --- Progress ----------------------------------------------------------------------------------


async def connected_import(browser: httpx.AsyncClient, world: World) -> str:
    await open_session(browser, ACCOUNT)
    await connect_chargebee(browser)
    connection = await world.connections.active(ACCOUNT)
    assert connection is not None
    assert connection.latest_import is not None
    return connection.latest_import.import_id


def counts(**resources: int) -> dict[str, ResourceCount]:
    return {name: ResourceCount(imported=n) for name, n in resources.items()}


async def consume(
    world: World, *events: ImportStarted | ImportProgressed | ImportCompleted | ImportFailed
) -> None:
    """What the ``imports.v1`` consumer does with each event."""
    for event in events:
        await record_import_counts(world.deps, event)
        if not isinstance(event, ImportProgressed):
            await track_import(world.deps, event)


async def test_progress_grows_per_resource_then_says_complete_with_the_counts(
    browser: httpx.AsyncClient, world: World
) -> None:
    import_id = await connected_import(browser, world)
    started = world.clock()

    queued = await page_at(browser, "/onboarding")
    assert "Starting the import" in queued.text
    refresh = [a for tag, a in queued.elements if tag == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh == [{"http-equiv": "refresh", "content": "3"}]

    await consume(
        world,
        ImportStarted(account_id=ACCOUNT, import_id=import_id, processor=Processor.CHARGEBEE),
        ImportProgressed(
            account_id=ACCOUNT, import_id=import_id, resources=counts(customers=120, invoices=40)
        ),
    )
    running = await page_at(browser, "/onboarding/progress")
    assert running.by_id("progress") is None  # the fragment alone
    [body] = [a for _, a in running.elements if a.get("class") == "progress-body"]
    assert body["data-finished"] == "false"
    assert "Customers 120" in running.text
    assert "Invoices 40" in running.text
    assert "You can leave this page" in running.text

    await consume(
        world,
        # Redelivered, older progress never lowers a count.
        ImportProgressed(account_id=ACCOUNT, import_id=import_id, resources=counts(customers=100)),
        ImportCompleted(
            account_id=ACCOUNT,
            import_id=import_id,
            processor=Processor.CHARGEBEE,
            resources=counts(customers=1250, subscriptions=1400, invoices=9001),
            past_cancellations=312,
            started_at=started,
            finished_at=started,
            contact_email=EMAIL,
        ),
    )
    done = await page_at(browser, "/onboarding")

    assert "Import complete" in done.text
    assert "Customers 1,250 Subscriptions 1,400 Invoices 9,001" in done.text
    assert "Past cancellations found: 312" in done.text
    assert f"A summary is on its way to {EMAIL}. You can close this page." in done.text
    assert not [a for tag, a in done.elements if tag == "meta" and a.get("http-equiv") == "refresh"]
    [body] = [a for _, a in done.elements if a.get("class") == "progress-body"]
    assert body["data-finished"] == "true"


async def test_a_failed_import_says_so_and_can_be_tried_again(
    browser: httpx.AsyncClient, world: World
) -> None:
    import_id = await connected_import(browser, world)
    await consume(
        world,
        ImportFailed(
            account_id=ACCOUNT,
            import_id=import_id,
            code="credentials_revoked",
            message="m",
            contact_email=EMAIL,
        ),
    )

    page = await page_at(browser, "/onboarding")

    assert "The import did not finish" in page.text
    assert "credentials_revoked" in page.text
    response = await browser.post("/onboarding/import", data={"csrf_token": page.csrf_token})
    assert response.status_code == 303
    [again] = world.publisher.events(ImportRequested)
    assert again.account_id == ACCOUNT
    assert "Starting the import" in (await page_at(browser, "/onboarding")).text


async def test_a_connected_account_is_not_offered_the_forms_again(
    browser: httpx.AsyncClient, world: World
) -> None:
    await open_session(browser, ACCOUNT)
    form = await page_at(browser, "/onboarding/chargebee")
    await connect_chargebee(browser)

    for path in ("/onboarding/stripe", "/onboarding/chargebee", "/onboarding/skip"):
        response = await browser.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/onboarding"
    # The same form sent twice (a second tab, the back button) connects nothing more.
    again = await browser.post(
        "/onboarding/chargebee",
        data={
            "csrf_token": form.csrf_token,
            "site": CHARGEBEE_SITE,
            "api_key": CHARGEBEE_KEY,
            "contact_email": EMAIL,
        },
    )
    assert again.status_code == 303
    assert again.headers["location"] == "/onboarding"
    assert len(world.publisher.events(ProcessorConnected)) == 1


async def test_counts_are_kept_only_where_a_store_is_given(world: World) -> None:
    event = ImportProgressed(account_id=ACCOUNT, import_id="imp_1", resources=counts(customers=1))
    assert await record_import_counts(world.deps, event) == "not_kept"
    store = with_import_counts(world)
    assert await record_import_counts(world.deps, event) == "counted"
    assert (
        await record_import_counts(
            world.deps, ImportStarted(account_id=ACCOUNT, import_id="imp_1", processor=Processor.STRIPE)
        )
        == "no_counts"
    )
    assert isinstance(store, InMemoryImportCounts)
    assert (await store.counts_of(ACCOUNT, "imp_1")) is not None


# --- What every page does ------------------------------------------------------------------------


async def test_every_page_labels_its_fields_and_keeps_its_secrets(browser: httpx.AsyncClient) -> None:
    await open_session(browser, ACCOUNT)
    for path in ("/onboarding", "/onboarding/stripe", "/onboarding/chargebee", "/onboarding/skip"):
        response = await browser.get(path)
        assert response.status_code == 200
        page = page_of(response)
        assert page.elements[0] == ("html", {"lang": "en"})
        assert [tag for tag, _ in page.elements].count("h1") == 1
        for name, attributes in page.visible_inputs().items():
            assert attributes["id"] in page.label_targets, f"{path}: {name} has no label"
            for described_by in attributes.get("aria-describedby", "").split():
                assert page.by_id(described_by) is not None
        for form in page.forms():
            assert form["method"] == "post"
        assert "csrf_token" in page.inputs() or path == "/onboarding"
        assert all("src" in a for tag, a in page.elements if tag == "script")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "form-action 'self' https://connect.stripe.test" in policy


async def test_the_pages_static_files_are_served(browser: httpx.AsyncClient) -> None:
    css = await browser.get("/onboarding/static/onboarding.css")
    script = await browser.get("/onboarding/static/onboarding.js")

    assert css.status_code == 200
    assert ":focus-visible" in css.text
    assert script.status_code == 200
    assert "progress" in script.text


async def test_the_key_is_in_no_log_line(
    browser: httpx.AsyncClient, world: World, captured_logs: io.StringIO
) -> None:
    await open_session(browser, ACCOUNT)
    await submit_stripe_key(browser, STRIPE_KEY)
    await submit_stripe_key(browser, "sk_test_51UnitSomebodyElse000000000000000else")

    logged = captured_logs.getvalue()
    assert "onboarding" in logged
    assert STRIPE_KEY not in logged
    assert "51UnitSomebodyElse" not in logged


async def test_the_api_still_serves_the_account_the_page_connected(browser: httpx.AsyncClient) -> None:
    await open_session(browser, ACCOUNT)
    await connect_chargebee(browser)

    response = await browser.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))

    assert response.status_code == 200
    assert response.json()["status"] == "connected"


def page_of(response: httpx.Response) -> Page:
    return Page(response.text)
