"""Offers end to end: the connector's HTTP API, the real store and broker, the fake processors over HTTP
written through the official SDKs; replays after a 5xx, a timeout and a crash write once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from connector_integration_kit import Connector, Processors
from contracts.topics import OFFERS
from devstack.events import TopicCollector

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_PC1_SITE,
    SAMPLE_CHARGEBEE_READ_ONLY_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_KEY,
    authorize_without_browser,
)

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

DAY_S = 86_400


@pytest.fixture(scope="module", autouse=True)
def _fresh_processor_data(processors: Processors) -> Iterator[None]:
    """Offers change the fakes' subscriptions: put them back for the modules that follow."""
    yield
    processors.stripe.reset()
    processors.chargebee.reset()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def offer_events(kafka_bootstrap: str) -> AsyncIterator[TopicCollector]:
    collector = await TopicCollector(kafka_bootstrap, OFFERS).start()
    yield collector
    await collector.stop()


def stripe_subscriptions(processors: Processors, status: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{processors.running.stripe_url}/v1/subscriptions",
        params={"status": status, "limit": 100},
        headers={"Authorization": f"Bearer {SAMPLE_STRIPE_KEY}"},
    )
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def stripe_subscription(processors: Processors, subscription_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{processors.running.stripe_url}/v1/subscriptions/{subscription_id}",
        headers={"Authorization": f"Bearer {SAMPLE_STRIPE_KEY}"},
    )
    found: dict[str, Any] = response.json()
    return found


def chargebee_subscriptions(processors: Processors, site: str, key: str, status: str) -> list[dict[str, Any]]:
    response = httpx.get(
        processors.running.chargebee_url_template.replace("{site}", site) + "/subscriptions",
        params={"status[is]": status, "limit": 100},
        auth=(key, ""),
    )
    return [entry["subscription"] for entry in response.json()["list"]]


def stripe_writes(processors: Processors) -> int:
    by_endpoint: dict[str, int] = processors.stripe.stats()["by_endpoint"]
    return sum(n for endpoint, n in by_endpoint.items() if endpoint.startswith("POST /v1/subscriptions/"))


async def connect_stripe(connector: Connector, account: str) -> None:
    pending = await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/stripe",
        account,
        json={"api_key": SAMPLE_STRIPE_KEY, "contact_email": "owner@acme.example"},
    )
    assert pending.status_code == 200, pending.text
    location = await asyncio.to_thread(authorize_without_browser, pending.json()["authorize_url"])
    await connector.follow_callback(location)
    view = (await connector.call("GET", f"/v1/accounts/{account}/connection", account)).json()
    assert view["status"] == "connected", view


async def connect_chargebee(connector: Connector, account: str, site: str, key: str) -> dict[str, Any]:
    response = await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/chargebee",
        account,
        json={"site": site, "api_key": key, "contact_email": "owner@acme.example"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def offer(
    connector: Connector, account: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await connector.call("POST", f"/v1/accounts/{account}/offers", account, json=body, headers=headers)


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


# --- Stripe ---------------------------------------------------------------------------------------


async def test_stripe_coupon_applied_once_announced_listed_and_replayed(
    connector: Connector, processors: Processors, offer_events: TopicCollector, account: str
) -> None:
    await connect_stripe(connector, account)
    view = (await connector.call("GET", f"/v1/accounts/{account}/connection", account)).json()
    assert view["features"]["coupon_offers"]
    assert view["features"]["trial_extension_offers"]
    sub = next(s for s in stripe_subscriptions(processors, "active") if not s.get("discount"))
    body = {"kind": "coupon", "subscription_id": sub["id"], "coupon_id": "VIP25"}
    key = new_key()
    writes_before = stripe_writes(processors)

    first = await offer(connector, account, body, key)

    assert first.status_code == 201, first.text
    applied = first.json()
    assert (applied["kind"], applied["subscription_id"], applied["status"]) == (
        "coupon",
        sub["id"],
        "applied",
    )
    assert applied["currency"] == sub["currency"].upper()
    assert applied["mrr_after"] == round(applied["mrr_before"] * 0.75)
    assert stripe_subscription(processors, sub["id"])["discount"]["coupon"]["id"] == "VIP25"
    [event] = [
        e.value for e in await offer_events.wait_for(lambda e: e.key == account and e.type == "OfferApplied")
    ]
    assert (event["offer_id"], event["processor"], event["customer_id"]) == (
        applied["offer_id"],
        "stripe",
        sub["customer"],
    )
    assert (event["mrr_before"], event["mrr_after"]) == (applied["mrr_before"], applied["mrr_after"])

    again = await offer(connector, account, body, key)
    assert (again.status_code, again.json()) == (201, applied)
    assert stripe_writes(processors) == writes_before + 1
    other = await offer(connector, account, {**body, "coupon_id": "SUMMER50"}, key)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_conflict")
    listed = await connector.call(
        "GET", f"/v1/accounts/{account}/offers?subscription_id={sub['id']}", account
    )
    assert listed.json() == {"items": [applied], "next_cursor": None}


def days_past_now(end: int) -> int:
    """Days that move ``end`` (the sample data's, which may lie in the past) into the future."""
    return max(1, (int(time.time()) - end) // DAY_S + 5)


async def test_stripe_trial_extension_and_free_days(
    connector: Connector, processors: Processors, account: str
) -> None:
    await connect_stripe(connector, account)
    trialing = stripe_subscriptions(processors, "trialing")[0]
    active = [s for s in stripe_subscriptions(processors, "active") if not s.get("discount")][1]
    trial_days = days_past_now(trialing["trial_end"])
    free_days = days_past_now(active["current_period_end"])

    extended = await offer(
        connector,
        account,
        {"kind": "trial_extension", "subscription_id": trialing["id"], "days": trial_days},
        new_key(),
    )
    free = await offer(
        connector,
        account,
        {"kind": "trial_extension", "subscription_id": active["id"], "days": free_days},
        new_key(),
    )

    assert extended.status_code == 201, extended.text
    moved_trial = stripe_subscription(processors, trialing["id"])
    assert moved_trial["trial_end"] == trialing["trial_end"] + trial_days * DAY_S
    assert extended.json()["mrr_before"] == extended.json()["mrr_after"] > 0
    assert free.status_code == 201, free.text
    moved = stripe_subscription(processors, active["id"])
    assert moved["current_period_end"] == active["current_period_end"] + free_days * DAY_S
    assert moved["status"] == "trialing"


async def test_stripe_refusals_change_nothing(
    connector: Connector, processors: Processors, account: str
) -> None:
    await connect_stripe(connector, account)
    active = stripe_subscriptions(processors, "active")[2]
    canceled = stripe_subscriptions(processors, "canceled")[0]
    cases: list[tuple[dict[str, Any], str | None, int, str]] = [
        (
            {"kind": "coupon", "subscription_id": active["id"], "coupon_id": "VIP25"},
            None,
            400,
            "idempotency_key_required",
        ),
        (
            {"kind": "coupon", "subscription_id": "sub_missing", "coupon_id": "VIP25"},
            new_key(),
            404,
            "subscription_not_found",
        ),
        (
            {"kind": "coupon", "subscription_id": active["id"], "coupon_id": "NOPE"},
            new_key(),
            404,
            "coupon_not_found",
        ),
        (
            {"kind": "coupon", "subscription_id": canceled["id"], "coupon_id": "VIP25"},
            new_key(),
            422,
            "offer_not_applicable",
        ),
        (
            {"kind": "trial_extension", "subscription_id": active["id"], "days": -1},
            new_key(),
            422,
            "invalid_request",
        ),
        (
            {"kind": "trial_extension", "subscription_id": active["id"], "days": 366},
            new_key(),
            422,
            "invalid_request",
        ),
        (
            {
                "kind": "coupon",
                "subscription_id": active["id"],
                "coupon": {"percent_off": 101, "duration": "once"},
            },
            new_key(),
            422,
            "invalid_request",
        ),
        (
            {
                "kind": "coupon",
                "subscription_id": active["id"],
                "coupon": {"amount_off": 500, "duration": "once"},
            },
            new_key(),
            422,
            "invalid_request",
        ),
        (
            {
                "kind": "coupon",
                "subscription_id": active["id"],
                "coupon": {"amount_off": 500, "currency": "XYZ", "duration": "once"},
            },
            new_key(),
            422,
            "invalid_request",
        ),
    ]
    writes_before = stripe_writes(processors)
    for body, key, status, code in cases:
        response = await offer(connector, account, body, key)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    assert stripe_writes(processors) == writes_before
    assert stripe_subscription(processors, active["id"]) == active
    listed = await connector.call("GET", f"/v1/accounts/{account}/offers", account)
    assert listed.json()["items"] == []


async def test_stripe_outage_then_replay_writes_once(
    connector: Connector, processors: Processors, account: str
) -> None:
    await connect_stripe(connector, account)
    sub = [s for s in stripe_subscriptions(processors, "active") if not s.get("discount")][3]
    body = {
        "kind": "coupon",
        "subscription_id": sub["id"],
        "coupon": {"percent_off": 30, "duration": "repeating", "duration_in_months": 3},
    }
    key = new_key()
    processors.stripe.add_fault(f"/v1/subscriptions/{sub['id']}", status=503, method="POST")

    down = await offer(connector, account, body, key)
    assert (down.status_code, down.json()["error"]["code"]) == (503, "processor_unavailable")

    replay = await offer(connector, account, body, key)
    assert replay.status_code == 201, replay.text
    assert replay.json()["mrr_after"] == round(replay.json()["mrr_before"] * 0.7)
    coupon = stripe_subscription(processors, sub["id"])["discount"]["coupon"]
    assert (coupon["percent_off"], coupon["duration_in_months"]) == (30, 3)


async def test_stripe_timeout_then_replay_writes_once(
    connector: Connector, processors: Processors, account: str
) -> None:
    """Stripe does not answer within PROCESSOR_TIMEOUT_S (the request is dropped with us): 503, the
    offer stays pending, and the replay applies it once."""
    await connect_stripe(connector, account)
    sub = [s for s in stripe_subscriptions(processors, "active") if not s.get("discount")][4]
    body = {"kind": "coupon", "subscription_id": sub["id"], "coupon_id": "VIP25"}
    key = new_key()
    timeout_s = connector.settings.processor_timeout_s
    processors.stripe.add_fault(f"/v1/subscriptions/{sub['id']}", delay_s=timeout_s + 1, method="POST")

    slow = await offer(connector, account, body, key)
    assert (slow.status_code, slow.json()["error"]["code"]) == (503, "processor_unavailable")
    [pending] = await connector.db["offers"].find({"account_id": account}).to_list()
    assert pending["status"] == "pending"

    replay = await offer(connector, account, body, key)
    assert replay.status_code == 201, replay.text
    assert replay.json()["offer_id"] == pending["_id"]
    assert stripe_subscription(processors, sub["id"])["discount"]["coupon"]["id"] == "VIP25"


async def test_stripe_crash_between_the_processors_answer_and_ours(
    connector: Connector, processors: Processors, account: str
) -> None:
    """Killed after Stripe applied it, before the offer was marked applied: the replay writes nothing
    new (same processor idempotency key), answers with the same offer and announces it."""
    await connect_stripe(connector, account)
    sub = [s for s in stripe_subscriptions(processors, "active") if not s.get("discount")][5]
    body = {"kind": "coupon", "subscription_id": sub["id"], "coupon_id": "VIP25"}
    key = new_key()
    first = await offer(connector, account, body, key)
    assert first.status_code == 201, first.text
    discount_id = stripe_subscription(processors, sub["id"])["discount"]["id"]
    offers = connector.db["offers"]
    await offers.update_one(
        {"_id": first.json()["offer_id"]}, {"$set": {"status": "pending", "result": None}}
    )

    replay = await offer(connector, account, body, key)

    assert replay.status_code == 201, replay.text
    assert replay.json()["offer_id"] == first.json()["offer_id"]
    assert replay.json()["mrr_before"] == first.json()["mrr_before"]
    assert stripe_subscription(processors, sub["id"])["discount"]["id"] == discount_id


# --- Chargebee ------------------------------------------------------------------------------------


async def test_chargebee_catalog_2_inline_coupon_and_trial_extension(
    connector: Connector, processors: Processors, offer_events: TopicCollector, account: str
) -> None:
    await connect_chargebee(connector, account, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY)
    active = next(
        s
        for s in chargebee_subscriptions(processors, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY, "active")
        if not s.get("coupons")
    )
    trial = chargebee_subscriptions(processors, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY, "in_trial")[0]
    trial_days = days_past_now(trial["trial_end"])
    coupon = {"amount_off": 500, "currency": active["currency_code"], "duration": "forever"}
    key = new_key()

    applied = await offer(
        connector, account, {"kind": "coupon", "subscription_id": active["id"], "coupon": coupon}, key
    )
    extended = await offer(
        connector,
        account,
        {"kind": "trial_extension", "subscription_id": trial["id"], "days": trial_days},
        new_key(),
    )

    assert applied.status_code == 201, applied.text
    assert applied.json()["mrr_after"] < applied.json()["mrr_before"]
    [after] = [
        s
        for s in chargebee_subscriptions(processors, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY, "active")
        if s["id"] == active["id"]
    ]
    assert len(after["coupons"]) == 1
    assert extended.status_code == 201, extended.text
    [moved] = [
        s
        for s in chargebee_subscriptions(processors, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY, "in_trial")
        if s["id"] == trial["id"]
    ]
    assert moved["trial_end"] == trial["trial_end"] + trial_days * DAY_S
    events = await offer_events.wait_for(lambda e: e.key == account, count=2)
    assert {e.value["processor"] for e in events} == {"chargebee"}
    again = await offer(
        connector, account, {"kind": "coupon", "subscription_id": active["id"], "coupon": coupon}, key
    )
    assert again.json() == applied.json()


async def test_chargebee_catalog_1_coupon_by_id(
    connector: Connector, processors: Processors, account: str
) -> None:
    await connect_chargebee(connector, account, SAMPLE_CHARGEBEE_PC1_SITE, SAMPLE_CHARGEBEE_PC1_KEY)
    active = next(
        s
        for s in chargebee_subscriptions(
            processors, SAMPLE_CHARGEBEE_PC1_SITE, SAMPLE_CHARGEBEE_PC1_KEY, "active"
        )
        if not s.get("coupons")
    )
    coupons = httpx.get(  # noqa: ASYNC210 - a quick read of the fake
        processors.running.chargebee_url_template.replace("{site}", SAMPLE_CHARGEBEE_PC1_SITE) + "/coupons",
        params={"status[is]": "active", "discount_type[is]": "percentage", "limit": 100},
        auth=(SAMPLE_CHARGEBEE_PC1_KEY, ""),
    ).json()["list"]
    forever = next(c["coupon"] for c in coupons if c["coupon"]["duration_type"] == "forever")

    response = await offer(
        connector,
        account,
        {"kind": "coupon", "subscription_id": active["id"], "coupon_id": forever["id"]},
        new_key(),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mrr_after"] == round(body["mrr_before"] * (1 - forever["discount_percentage"] / 100))


async def test_a_read_only_chargebee_key_has_no_offers(
    connector: Connector, processors: Processors, account: str
) -> None:
    await connect_chargebee(connector, account, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_READ_ONLY_KEY)
    view = (await connector.call("GET", f"/v1/accounts/{account}/connection", account)).json()
    assert view["features"]["coupon_offers"] is False
    assert view["feature_reasons"] == {
        "coupon_offers": "read_only_key",
        "trial_extension_offers": "read_only_key",
    }
    active = chargebee_subscriptions(processors, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY, "active")[0]

    response = await offer(
        connector,
        account,
        {"kind": "coupon", "subscription_id": active["id"], "coupon_id": "VIP25"},
        new_key(),
    )

    assert (response.status_code, response.json()["error"]["code"]) == (409, "feature_unavailable")


async def test_a_skipped_account_has_no_offers(connector: Connector, account: str) -> None:
    await connector.call("POST", f"/v1/accounts/{account}/connections/skip", account, json={})

    response = await offer(
        connector, account, {"kind": "trial_extension", "subscription_id": "sub_1", "days": 3}, new_key()
    )

    assert (response.status_code, response.json()["error"]["code"]) == (409, "feature_unavailable")


async def test_disconnect_with_erase_deletes_the_accounts_offers(
    connector: Connector, processors: Processors, account: str
) -> None:
    await connect_chargebee(connector, account, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY)
    trial = chargebee_subscriptions(processors, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY, "in_trial")[0]
    applied = await offer(
        connector, account, {"kind": "trial_extension", "subscription_id": trial["id"], "days": 1}, new_key()
    )
    assert applied.status_code == 201, applied.text
    other = f"acc_{uuid.uuid4().hex[:8]}"
    await connect_chargebee(connector, other, SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_KEY)
    kept = await offer(
        connector, other, {"kind": "trial_extension", "subscription_id": trial["id"], "days": 1}, new_key()
    )
    assert kept.status_code == 201, kept.text
    assert await connector.db.offers.count_documents({"account_id": account}) == 1

    erased = await connector.call("DELETE", f"/v1/accounts/{account}/connection?erase=true", account)

    assert erased.status_code == 204, erased.text
    assert await connector.db.offers.count_documents({"account_id": account}) == 0
    assert trial["id"] not in str(await connector.db.offers.find({"account_id": account}).to_list())
    assert await connector.db.offers.count_documents({"account_id": other}) == 1
    # Asked again (the erase of a disconnected account): nothing left, nothing refused.
    again = await connector.call("DELETE", f"/v1/accounts/{account}/connection?erase=true", account)
    assert again.status_code == 204, again.text
    # Disconnecting without erase keeps them.
    await connector.call("DELETE", f"/v1/accounts/{other}/connection", other)
    assert await connector.db.offers.count_documents({"account_id": other}) == 1
