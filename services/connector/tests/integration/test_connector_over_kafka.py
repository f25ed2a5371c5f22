"""The onboarding gateway's requests over the real broker: sealed secrets in, answers on connections.v1."""

from __future__ import annotations

import base64
import uuid

import pytest
from connector.adapters.sealed_box import seal
from connector_integration_kit import Connector, Processors, assert_no_secret_in
from contracts.connections import CONNECTIONS_COLLECTION
from nacl.public import PrivateKey

from sandbox import (
    SAMPLE_CHARGEBEE_BLOCKED_KEY,
    SAMPLE_CHARGEBEE_BLOCKED_SITE,
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_RESTRICTED_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_LIMITED_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_ID,
    SAMPLE_STRIPE_PUBLISHABLE_KEY,
    authorize_without_browser,
)

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

RETURN_URL = "https://gateway.example/onboarding/stripe-done"


def stripe_request(connector: Connector, account: str, key: str = SAMPLE_STRIPE_KEY) -> dict[str, object]:
    return {
        "type": "StripeKeySubmitted",
        "account_id": account,
        "api_key_sealed": connector.secrets.seal(key),
        "contact_email": "owner@acme.example",
        "return_url": RETURN_URL,
    }


def chargebee_request(
    connector: Connector, account: str, site: str = SAMPLE_CHARGEBEE_SITE, key: str = SAMPLE_CHARGEBEE_KEY
) -> dict[str, object]:
    return {
        "type": "ChargebeeCredentialsSubmitted",
        "account_id": account,
        "site": site,
        "api_key_sealed": connector.secrets.seal(key),
        "contact_email": "billing@acme.example",
    }


async def rejection(connector: Connector, account: str, request_id: str) -> dict[str, object]:
    [rejected] = await connector.answer(account, "ConnectionRejected")
    assert rejected["request_event_id"] == request_id
    assert rejected["message"]
    return rejected


async def documents(connector: Connector, account: str) -> list[dict[str, object]]:
    return [d async for d in connector.db[CONNECTIONS_COLLECTION].find({"account_id": account})]


async def test_sealed_chargebee_credentials_connect(connector: Connector, account: str) -> None:
    await connector.submit(chargebee_request(connector, account))

    [connected] = await connector.answer(account, "ProcessorConnected")

    assert (connected["processor"], connected["mode"], connected["processor_account_id"]) == (
        "chargebee",
        "test",
        "acme-test",
    )
    assert connected["import_id"]
    [document] = await documents(connector, account)
    assert document["product_catalog"] == "2.0"
    assert document["status"] == "connected"


async def test_a_sealed_stripe_key_leads_to_the_authorize_url_and_then_a_connection(
    connector: Connector, account: str
) -> None:
    await connector.submit(stripe_request(connector, account))

    [asked] = await connector.answer(account, "StripeAuthorizationRequired")
    callback = await connector.follow_callback(authorize_without_browser(str(asked["authorize_url"])))

    assert callback.status_code == 303
    assert callback.headers["location"] == RETURN_URL + "?status=connected"
    [connected] = await connector.answer(account, "ProcessorConnected")
    assert (connected["connection_id"], connected["processor_account_id"]) == (
        asked["connection_id"],
        SAMPLE_STRIPE_ACCOUNT_ID,
    )


async def test_skip_over_kafka(connector: Connector, account: str) -> None:
    await connector.submit(
        {"type": "SkipRequested", "account_id": account, "contact_email": "o@acme.example"}
    )

    [skipped] = await connector.answer(account, "ProcessorSkipped")

    assert skipped["disabled_features"] == [
        "past_cancellations",
        "recovered_revenue",
        "coupon_offers",
        "trial_extension_offers",
    ]


@pytest.mark.parametrize(
    ("site", "key", "code"),
    [
        (SAMPLE_CHARGEBEE_SITE, "test_NotAKeyOfThisSite000000000000", "key_rejected"),
        ("no-such-site-test", SAMPLE_CHARGEBEE_KEY, "site_not_found"),
        (SAMPLE_CHARGEBEE_BLOCKED_SITE, SAMPLE_CHARGEBEE_BLOCKED_KEY, "site_blocked"),
        (SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_RESTRICTED_KEY, "insufficient_permissions"),
        ("https://evil.example/", SAMPLE_CHARGEBEE_KEY, "invalid_site"),
        (SAMPLE_CHARGEBEE_SITE, "not a key", "invalid_key_format"),
    ],
)
async def test_chargebee_refusals_are_answered(
    connector: Connector, account: str, site: str, key: str, code: str
) -> None:
    request_id = await connector.submit(chargebee_request(connector, account, site, key))

    assert (await rejection(connector, account, request_id))["code"] == code
    assert await documents(connector, account) == []


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (SAMPLE_STRIPE_PUBLISHABLE_KEY, "publishable_key"),
        ("rk_live_", "invalid_key_format"),
        ("sk_test_51NoSuchKeyAnywhere000000000000000000000", "key_rejected"),
        (SAMPLE_STRIPE_LIMITED_KEY, "insufficient_permissions"),
    ],
)
async def test_stripe_refusals_are_answered(connector: Connector, account: str, key: str, code: str) -> None:
    request_id = await connector.submit(stripe_request(connector, account, key))

    assert (await rejection(connector, account, request_id))["code"] == code
    assert await documents(connector, account) == []


async def test_a_return_url_off_the_allowed_hosts_is_answered_invalid_return_url(
    connector: Connector, account: str
) -> None:
    request = {**stripe_request(connector, account), "return_url": "https://evil.example/stripe-done"}

    request_id = await connector.submit(request)

    assert (await rejection(connector, account, request_id))["code"] == "invalid_return_url"
    assert await documents(connector, account) == []


@pytest.mark.parametrize(
    ("processor", "path", "status", "code"),
    [
        ("stripe", "/v1/account", 429, "rate_limited"),
        ("stripe", "/v1/account", 502, "processor_unavailable"),
        ("chargebee", "/customers", 429, "rate_limited"),
        ("chargebee", "/customers", 503, "processor_unavailable"),
    ],
)
async def test_throttling_and_outages_are_answered(
    connector: Connector,
    processors: Processors,
    account: str,
    processor: str,
    path: str,
    status: int,
    code: str,
) -> None:
    admin = processors.stripe if processor == "stripe" else processors.chargebee
    admin.add_fault(path, status=status, retry_after_s=5)
    request = (
        stripe_request(connector, account) if processor == "stripe" else chargebee_request(connector, account)
    )

    request_id = await connector.submit(request)

    assert (await rejection(connector, account, request_id))["code"] == code


async def test_a_second_connect_is_answered_already_connected(connector: Connector, account: str) -> None:
    await connector.submit(chargebee_request(connector, account))
    await connector.answer(account, "ProcessorConnected")

    request_id = await connector.submit(chargebee_request(connector, account))

    assert (await rejection(connector, account, request_id))["code"] == "already_connected"


async def test_a_plaintext_key_in_the_sealed_field_is_refused_unused(
    connector: Connector, processors: Processors, account: str
) -> None:
    processors.stripe.reset_stats()
    request = {**stripe_request(connector, account), "api_key_sealed": SAMPLE_STRIPE_KEY}

    request_id = await connector.submit(request)

    assert (await rejection(connector, account, request_id))["code"] == "plaintext_secret"
    assert processors.stripe.stats()["requests_total"] == 0
    assert await documents(connector, account) == []


async def test_a_plaintext_secret_field_is_refused_unused(connector: Connector, account: str) -> None:
    request = {k: v for k, v in chargebee_request(connector, account).items() if k != "api_key_sealed"}

    request_id = await connector.submit({**request, "api_key": SAMPLE_CHARGEBEE_KEY})

    assert (await rejection(connector, account, request_id))["code"] == "plaintext_secret"
    assert await documents(connector, account) == []


async def test_a_box_sealed_to_another_key_is_refused(connector: Connector, account: str) -> None:
    stranger = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    request = {
        **chargebee_request(connector, account),
        "api_key_sealed": seal(stranger, SAMPLE_CHARGEBEE_KEY),
    }

    request_id = await connector.submit(request)

    assert (await rejection(connector, account, request_id))["code"] == "sealed_secret_invalid"


async def test_an_invalid_request_is_answered(connector: Connector, account: str) -> None:
    request_id = await connector.submit({"type": "ChargebeeCredentialsSubmitted", "account_id": account})

    rejected = await rejection(connector, account, request_id)

    assert rejected["code"] == "invalid_request"
    assert "site" in str(rejected["message"])


async def test_account_mismatch_after_a_kafka_request_is_answered(connector: Connector, account: str) -> None:
    request_id = await connector.submit(stripe_request(connector, account))
    [asked] = await connector.answer(account, "StripeAuthorizationRequired")

    callback = await connector.follow_callback(
        authorize_without_browser(str(asked["authorize_url"]), account=SAMPLE_STRIPE_OTHER_ACCOUNT_ID)
    )

    assert callback.headers["location"] == RETURN_URL + "?status=error&code=account_mismatch"
    assert (await rejection(connector, account, request_id))["code"] == "account_mismatch"


async def test_a_redelivered_request_is_carried_out_once(connector: Connector, account: str) -> None:
    request = {**chargebee_request(connector, account), "event_id": str(uuid.uuid4())}

    await connector.submit(request)
    await connector.submit(request)
    await connector.answer(account, "ProcessorConnected")
    follow_up = await connector.submit({"type": "SkipRequested", "account_id": account})

    # Events of one account are answered in order: once the later request is answered, so was the redelivery.
    assert (await rejection(connector, account, follow_up))["code"] == "already_connected"
    assert [e["type"] for e in connector.published_for(account)] == [
        "ProcessorConnected",
        "ConnectionRejected",
    ]
    assert len(await documents(connector, account)) == 1


async def test_nothing_that_came_out_holds_a_secret(connector: Connector) -> None:
    await assert_no_secret_in(connector)
