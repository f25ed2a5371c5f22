"""The onboarding page's offers demo over in-memory fakes: the subscriptions it lists, the coupon and
trial forms through ``apply_offer``, a form sent twice applying once, each refusal where it belongs,
CSRF, and the offers that are off saying why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.track_imports import track_import
from connector_fakes import CHARGEBEE_KEY, CHARGEBEE_SITE, World
from contracts.events import ImportCompleted, OfferApplied, Processor
from onboarding_offer_fakes import FakeOfferProcessor, with_offers
from onboarding_page_kit import Page, browser_over, open_session, page_at, with_import_counts

ACCOUNT = "acct_offers_page"
EMAIL = "owner@acme.example"


@pytest.fixture
def processor(world: World) -> FakeOfferProcessor:
    with_import_counts(world)
    return with_offers(world)


@pytest.fixture
async def browser(world: World, processor: FakeOfferProcessor) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_over(world) as client:
        yield client


async def connect(browser: httpx.AsyncClient, world: World, *, complete: bool = True) -> None:
    """Chargebee connected through the page; its import completed when ``complete``."""
    await open_session(browser, ACCOUNT)
    form = await page_at(browser, "/onboarding/chargebee")
    response = await browser.post(
        "/onboarding/chargebee",
        data={
            "csrf_token": form.csrf_token,
            "site": CHARGEBEE_SITE,
            "api_key": CHARGEBEE_KEY,
            "contact_email": EMAIL,
        },
    )
    assert response.status_code == 200, response.text  # the progress, with the webhook credentials
    connection = await world.connections.active(ACCOUNT)
    assert connection is not None
    assert connection.latest_import is not None
    if complete:
        now = world.clock()
        await track_import(
            world.deps,
            ImportCompleted(
                account_id=ACCOUNT,
                import_id=connection.latest_import.import_id,
                processor=Processor.CHARGEBEE,
                resources={},
                past_cancellations=0,
                started_at=now,
                finished_at=now,
                contact_email=EMAIL,
            ),
        )


def form_of(page: Page, kind: str) -> dict[str, str]:
    """The hidden fields of the coupon or the trial form (the forms share field names)."""
    hidden: dict[str, str] = {}
    current: dict[str, str] = {}
    for tag, attributes in page.elements:
        if tag == "form":
            current = {}
        if tag == "input" and attributes.get("type") == "hidden":
            current[attributes["name"]] = attributes["value"]
            if current.get("kind") == kind:
                hidden = current
    return hidden


async def post(browser: httpx.AsyncClient, hidden: dict[str, str], **fields: str) -> httpx.Response:
    return await browser.post("/onboarding/offers", data={**hidden, **fields})


async def test_the_complete_import_leads_to_the_demo_which_lists_live_subscriptions(
    browser: httpx.AsyncClient, world: World
) -> None:
    await connect(browser, world)

    home = await page_at(browser, "/onboarding")
    assert [a for tag, a in home.elements if tag == "a" and a.get("href") == "/onboarding/offers"]
    page = await page_at(browser, "/onboarding/offers")

    listed = [a["data-subscription"] for tag, a in page.elements if tag == "tr" and "data-subscription" in a]
    assert listed == ["sub_active", "sub_trial"]  # the cancelled one is not offered
    assert "USD 50.00" in page.text
    coupon, trial = form_of(page, "coupon"), form_of(page, "trial_extension")
    assert coupon["csrf_token"] == trial["csrf_token"] == page.csrf_token
    assert coupon["idempotency_key"] != trial["idempotency_key"]
    again = await page_at(browser, "/onboarding/offers")
    assert form_of(again, "coupon")["idempotency_key"] != coupon["idempotency_key"]  # a key per render
    assert page.by_id("coupon-subscription_id") is not None
    assert page.by_id("trial_extension-days") is not None
    assert page.label_targets >= {
        "coupon-subscription_id",
        "coupon-coupon_id",
        "coupon-percent_off",
        "coupon-duration",
        "trial_extension-days",
    }


async def test_before_the_import_is_done_the_demo_leads_back_to_the_page(
    browser: httpx.AsyncClient, world: World
) -> None:
    await connect(browser, world, complete=False)

    for response in (await browser.get("/onboarding/offers"), await browser.post("/onboarding/offers")):
        assert response.status_code == 303
        assert response.headers["location"] == "/onboarding"


async def test_a_coupon_by_id_is_applied_once_however_often_its_form_is_sent(
    browser: httpx.AsyncClient, world: World, processor: FakeOfferProcessor
) -> None:
    await connect(browser, world)
    hidden = form_of(await page_at(browser, "/onboarding/offers"), "coupon")

    first = await post(browser, hidden, subscription_id="sub_active", coupon_id="SAVE10", percent_off="")
    second = await post(browser, hidden, subscription_id="sub_active", coupon_id="SAVE10", percent_off="")

    assert first.status_code == second.status_code == 200
    shown = Page(first.text)
    result = shown.by_id("offer-result")
    assert result is not None
    assert "Coupon applied" in shown.text
    assert "USD 50.00 before, USD 45.00 after" in shown.text
    assert Page(second.text).by_id("offer-result") == result  # the same offer, answered again
    assert processor.writes == ["coupon SAVE10 on sub_active"]
    assert len(world.publisher.events(OfferApplied)) == 1
    assert [d.coupon_id for d in processor.subscriptions["sub_active"].discounts] == ["SAVE10"]


async def test_a_percent_off_creates_the_coupon_then_applies_it(
    browser: httpx.AsyncClient, world: World, processor: FakeOfferProcessor
) -> None:
    await connect(browser, world)
    hidden = form_of(await page_at(browser, "/onboarding/offers"), "coupon")

    response = await post(
        browser,
        hidden,
        subscription_id="sub_trial",
        percent_off="20",
        duration="repeating",
        duration_in_months="3",
    )

    assert response.status_code == 200, response.text
    assert "USD 29.00 before, USD 23.20 after" in Page(response.text).text
    assert processor.writes[1] == "coupon " + processor.writes[0].removeprefix("create ") + " on sub_trial"


async def test_a_trial_is_extended_by_the_days_asked(
    browser: httpx.AsyncClient, world: World, processor: FakeOfferProcessor
) -> None:
    await connect(browser, world)
    trial_end = processor.subscriptions["sub_trial"].trial_end
    assert trial_end is not None
    hidden = form_of(await page_at(browser, "/onboarding/offers"), "trial_extension")

    response = await post(browser, hidden, subscription_id="sub_trial", days="14")

    assert response.status_code == 200, response.text
    assert "Trial extended" in Page(response.text).text
    extended = processor.subscriptions["sub_trial"].trial_end
    assert extended is not None
    assert (extended - trial_end).days == 14


@pytest.mark.parametrize(
    ("kind", "fields", "status", "code", "field_id"),
    [
        (
            "coupon",
            {"subscription_id": "sub_nope", "coupon_id": "SAVE10"},
            404,
            "subscription_not_found",
            "coupon-subscription_id",
        ),
        (
            "coupon",
            {"subscription_id": "sub_active", "coupon_id": "NOPE"},
            404,
            "coupon_not_found",
            "coupon-coupon_id",
        ),
        ("coupon", {"subscription_id": "sub_over", "coupon_id": "SAVE10"}, 422, "offer_not_applicable", None),
        ("trial_extension", {"subscription_id": "sub_over", "days": "5"}, 422, "offer_not_applicable", None),
        (
            "coupon",
            {"subscription_id": "sub_active", "coupon_id": "SAVE10", "percent_off": "5"},
            422,
            "invalid_request",
            "coupon-coupon_id",
        ),
        (
            "coupon",
            {"subscription_id": "sub_active", "percent_off": "101"},
            422,
            "invalid_request",
            "coupon-percent_off",
        ),
        (
            "coupon",
            {"subscription_id": "sub_active", "percent_off": "5", "duration": "repeating"},
            422,
            "invalid_request",
            "coupon-duration_in_months",
        ),
        (
            "trial_extension",
            {"subscription_id": "sub_trial", "days": "0"},
            422,
            "invalid_request",
            "trial_extension-days",
        ),
        (
            "trial_extension",
            {"subscription_id": "sub_trial", "days": "-3"},
            422,
            "invalid_request",
            "trial_extension-days",
        ),
        (
            "trial_extension",
            {"subscription_id": "", "days": "3"},
            422,
            "invalid_request",
            "trial_extension-subscription_id",
        ),
    ],
)
async def test_each_refusal_is_shown_on_its_field_or_above_its_form_and_nothing_is_written(
    browser: httpx.AsyncClient,
    world: World,
    processor: FakeOfferProcessor,
    kind: str,
    fields: dict[str, str],
    status: int,
    code: str,
    field_id: str | None,
) -> None:
    await connect(browser, world)
    hidden = form_of(await page_at(browser, "/onboarding/offers"), kind)

    response = await post(browser, hidden, **{"duration": "forever", **fields})

    assert response.status_code == status, response.text
    page = Page(response.text)
    assert page.by_id("offer-result") is None
    if field_id is None:
        assert page.by_id(f"{kind}-problem") is not None
        assert code in page.text
    else:
        field = page.by_id(field_id)
        assert field is not None
        assert field["aria-invalid"] == "true"
        assert f"{field_id}-error" in field["aria-describedby"]
    assert page.alerts
    assert processor.writes == []
    assert world.publisher.events(OfferApplied) == []
    # The form comes back with a new key, so a corrected offer is a new one.
    assert form_of(page, kind)["idempotency_key"] != hidden["idempotency_key"]


async def test_feature_unavailable_from_the_processor_is_shown_with_its_reason(
    browser: httpx.AsyncClient, world: World, processor: FakeOfferProcessor
) -> None:
    await connect(browser, world)
    hidden = form_of(await page_at(browser, "/onboarding/offers"), "coupon")
    processor.refusal = ConnectionRefused(
        RefusalCode.FEATURE_UNAVAILABLE, "Chargebee no longer lets us change this site's subscriptions."
    )

    response = await post(browser, hidden, subscription_id="sub_active", coupon_id="SAVE10")

    assert response.status_code == 409
    [alert] = Page(response.text).alerts
    assert "no longer lets us change" in alert
    assert "feature_unavailable" in alert


async def test_a_form_without_the_csrf_token_applies_nothing(
    browser: httpx.AsyncClient, world: World, processor: FakeOfferProcessor
) -> None:
    await connect(browser, world)
    hidden = form_of(await page_at(browser, "/onboarding/offers"), "coupon")

    response = await post(
        browser, {**hidden, "csrf_token": "forged"}, subscription_id="sub_active", coupon_id="SAVE10"
    )

    assert response.status_code == 403
    assert "out of date" in Page(response.text).text
    assert processor.writes == []


async def test_a_read_only_key_shows_no_forms_and_says_why(browser: httpx.AsyncClient, world: World) -> None:
    world.chargebee.write_refused = "read_only_key"
    await connect(browser, world)

    page = await page_at(browser, "/onboarding/offers")

    assert not [a for tag, a in page.elements if tag == "form" and a.get("action") == "/onboarding/offers"]
    for element_id in ("coupon-off", "trial-off"):
        assert page.by_id(element_id) is not None
    assert "Coupon offers are off: the API key you connected may only read" in page.text
    assert "read_only_key" in page.text
    assert page.by_id("subscriptions") is None


async def test_subscriptions_the_processor_cannot_list_leave_the_forms_usable(
    browser: httpx.AsyncClient, world: World, processor: FakeOfferProcessor
) -> None:
    await connect(browser, world)
    processor.listing_refusal = ConnectionRefused(
        RefusalCode.PROCESSOR_UNAVAILABLE, "Chargebee did not answer."
    )

    page = await page_at(browser, "/onboarding/offers")

    assert "did not list your subscriptions just now" in page.text
    assert "processor_unavailable" in page.text
    hidden = form_of(page, "trial_extension")
    processor.listing_refusal = None
    response = await post(browser, hidden, subscription_id="sub_active", days="3")
    assert response.status_code == 200
    assert processor.writes == ["end of sub_active to 2026-03-24"]


async def test_without_offers_served_the_demo_says_so(world: World) -> None:
    with_import_counts(world)
    async with browser_over(world) as browser:
        await connect(browser, world)
        page = await page_at(browser, "/onboarding/offers")

    assert "this installation does not apply offers" in page.text
    assert "not_served" in page.text
