"""The connector's HTTP API against the real store, the real broker and the sandbox's fake processors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from connector.adapters.chargebee_api import ChargebeeHttpGateway
from connector.adapters.mongo_store import OAUTH_STATES_COLLECTION
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector_integration_kit import Connector, Processors, assert_no_secret_in
from contracts.connections import CONNECTIONS_COLLECTION, CredentialCipher, StoredConnection
from pydantic import SecretStr

from sandbox import (
    SAMPLE_CHARGEBEE_BLOCKED_KEY,
    SAMPLE_CHARGEBEE_BLOCKED_SITE,
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_PC1_SITE,
    SAMPLE_CHARGEBEE_RESTRICTED_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_LIMITED_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_ID,
    SAMPLE_STRIPE_PUBLISHABLE_KEY,
    SAMPLE_STRIPE_RESTRICTED_KEY,
    authorize_without_browser,
)

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

RETURN_URL = "https://app.example/onboarding?step=processor"


def chargebee_body(site: str = SAMPLE_CHARGEBEE_SITE, key: str = SAMPLE_CHARGEBEE_KEY) -> dict[str, str]:
    return {"site": site, "api_key": key, "contact_email": "billing@acme.example"}


def stripe_body(key: str = SAMPLE_STRIPE_KEY) -> dict[str, str]:
    return {"api_key": key, "contact_email": "owner@acme.example", "return_url": RETURN_URL}


def error_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def stored(connector: Connector, account: str) -> list[StoredConnection]:
    cursor = connector.db[CONNECTIONS_COLLECTION].find({"account_id": account})
    return [StoredConnection.model_validate(document) async for document in cursor]


def cipher(connector: Connector) -> CredentialCipher:
    return connector.settings.credential_cipher()


# --- Chargebee ------------------------------------------------------------------------------------


async def test_chargebee_connects_and_announces_the_import(connector: Connector, account: str) -> None:
    response = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/chargebee", account, json=chargebee_body()
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["mode"]) == ("connected", "test")
    [document] = await stored(connector, account)
    assert document.connection_id == body["connection_id"]
    assert (document.site, document.product_catalog, document.processor_account_id) == (
        "acme-test",
        "2.0",
        "acme-test",
    )
    assert document.credentials_ciphertext is not None
    assert (
        cipher(connector).decrypt(document.credentials_ciphertext).api_key.get_secret_value()
        == SAMPLE_CHARGEBEE_KEY
    )
    [event] = await connector.answer(account, "ProcessorConnected")
    assert event["import_id"] == body["import_id"]
    assert (event["connection_id"], event["processor"], event["mode"]) == (
        body["connection_id"],
        "chargebee",
        "test",
    )
    assert event["contact_email"] == "billing@acme.example"


async def test_a_product_catalog_1_site_is_recorded_for_the_importer(
    connector: Connector, account: str
) -> None:
    response = await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/chargebee",
        account,
        json=chargebee_body(SAMPLE_CHARGEBEE_PC1_SITE, SAMPLE_CHARGEBEE_PC1_KEY),
    )

    assert response.status_code == 201
    [document] = await stored(connector, account)
    assert document.product_catalog == "1.0"


@pytest.mark.parametrize(
    ("site", "key", "status", "code"),
    [
        (SAMPLE_CHARGEBEE_SITE, "test_NotAKeyOfThisSite000000000000", 422, "key_rejected"),
        ("no-such-site-test", SAMPLE_CHARGEBEE_KEY, 422, "site_not_found"),
        (SAMPLE_CHARGEBEE_BLOCKED_SITE, SAMPLE_CHARGEBEE_BLOCKED_KEY, 422, "site_blocked"),
        (SAMPLE_CHARGEBEE_SITE, SAMPLE_CHARGEBEE_RESTRICTED_KEY, 422, "insufficient_permissions"),
        ("evil.example.com/", SAMPLE_CHARGEBEE_KEY, 422, "invalid_site"),
        (SAMPLE_CHARGEBEE_SITE, "bad key", 422, "invalid_key_format"),
    ],
)
async def test_chargebee_refusals_store_and_announce_nothing(
    connector: Connector, processors: Processors, account: str, site: str, key: str, status: int, code: str
) -> None:
    processors.chargebee.reset_stats()

    response = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/chargebee", account, json=chargebee_body(site, key)
    )

    assert (response.status_code, error_of(response)) == (status, code)
    assert await stored(connector, account) == []
    if code in ("invalid_site", "invalid_key_format"):
        assert processors.chargebee.stats()["requests_total"] == 0


async def test_insufficient_chargebee_permissions_name_the_resource(
    connector: Connector, account: str
) -> None:
    response = await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/chargebee",
        account,
        json=chargebee_body(key=SAMPLE_CHARGEBEE_RESTRICTED_KEY),
    )

    assert response.json()["error"]["missing_permissions"] == ["invoices"]


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [(429, "rate_limited", 429), (503, "processor_unavailable", 503), (500, "processor_unavailable", 503)],
)
async def test_chargebee_throttling_and_outages_say_when_to_retry(
    connector: Connector, processors: Processors, account: str, status: int, code: str, http_status: int
) -> None:
    processors.chargebee.add_fault("/customers", status=status, retry_after_s=17)

    response = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/chargebee", account, json=chargebee_body()
    )

    assert (response.status_code, error_of(response)) == (http_status, code)
    assert response.headers["retry-after"] == "17"
    assert await stored(connector, account) == []


async def test_an_unknown_chargebee_host_is_an_unknown_site() -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        gateway = ChargebeeHttpGateway(client, url_template="http://{site}.chargebee.invalid/api/v2")
        with pytest.raises(ConnectionRefused) as refused:
            await gateway.check_access(
                ChargebeeSite.parse("acme"), ChargebeeApiKey(SecretStr(SAMPLE_CHARGEBEE_KEY))
            )

    assert refused.value.code is RefusalCode.SITE_NOT_FOUND


async def test_a_second_connect_is_a_conflict_and_concurrent_ones_store_exactly_one(
    connector: Connector, account: str
) -> None:
    path = f"/v1/accounts/{account}/connections/chargebee"

    first, second = await asyncio.gather(
        connector.call("POST", path, account, json=chargebee_body()),
        connector.call("POST", path, account, json=chargebee_body()),
    )
    third = await connector.call("POST", path, account, json=chargebee_body())

    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert (third.status_code, error_of(third)) == (409, "already_connected")
    assert len(await stored(connector, account)) == 1
    assert len(await connector.answer(account, "ProcessorConnected")) == 1


# --- Stripe ---------------------------------------------------------------------------------------


async def start_stripe(connector: Connector, account: str, key: str = SAMPLE_STRIPE_KEY) -> dict[str, str]:
    response = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/stripe", account, json=stripe_body(key)
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_stripe_connects_through_oauth_and_starts_the_import(
    connector: Connector, account: str
) -> None:
    pending = await start_stripe(connector, account)
    assert (pending["status"], pending["mode"]) == ("awaiting_authorization", "test")
    [asked] = await connector.answer(account, "StripeAuthorizationRequired")
    assert asked["authorize_url"] == pending["authorize_url"]

    callback = await connector.follow_callback(authorize_without_browser(pending["authorize_url"]))

    assert callback.status_code == 303
    assert callback.headers["location"] == RETURN_URL + "&status=connected"
    [connected] = await connector.answer(account, "ProcessorConnected")
    assert (connected["processor_account_id"], connected["connection_id"]) == (
        SAMPLE_STRIPE_ACCOUNT_ID,
        pending["connection_id"],
    )
    [document] = await stored(connector, account)
    assert document.status == "connected"
    assert document.credentials_ciphertext is not None
    credentials = cipher(connector).decrypt(document.credentials_ciphertext)
    assert credentials.api_key.get_secret_value() == SAMPLE_STRIPE_KEY
    assert credentials.oauth_access_token is not None
    assert credentials.oauth_refresh_token is not None
    view = (await connector.call("GET", f"/v1/accounts/{account}/connection", account)).json()
    assert view["status"] == "connected"
    assert view["latest_import"]["import_id"] == connected["import_id"]


async def test_a_restricted_key_that_reads_everything_is_accepted(connector: Connector, account: str) -> None:
    assert (await start_stripe(connector, account, SAMPLE_STRIPE_RESTRICTED_KEY))["mode"] == "test"


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (SAMPLE_STRIPE_PUBLISHABLE_KEY, "publishable_key"),
        ("sk_test_", "invalid_key_format"),
        ("whsec_abcdefghijklmnop", "invalid_key_format"),
        ("sk_test_51NoSuchKeyAnywhere000000000000000000000", "key_rejected"),
        (SAMPLE_STRIPE_LIMITED_KEY, "insufficient_permissions"),
    ],
)
async def test_stripe_key_refusals(connector: Connector, account: str, key: str, code: str) -> None:
    response = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/stripe", account, json=stripe_body(key)
    )

    assert (response.status_code, error_of(response)) == (422, code)
    if code == "insufficient_permissions":
        assert response.json()["error"]["missing_permissions"] == ["invoices"]
    assert await stored(connector, account) == []
    assert await connector.db[OAUTH_STATES_COLLECTION].count_documents({"account_id": account}) == 0


@pytest.mark.parametrize(
    ("fault", "http_status", "code"),
    [
        ({"status": 429, "retry_after_s": 4}, 429, "rate_limited"),
        ({"status": 500, "retry_after_s": 4}, 503, "processor_unavailable"),
        ({"delay_s": 4.0}, 503, "processor_unavailable"),
        ({"close_connection": True}, 503, "processor_unavailable"),
    ],
)
async def test_stripe_throttling_outages_and_timeouts(
    connector: Connector,
    processors: Processors,
    account: str,
    fault: dict[str, object],
    http_status: int,
    code: str,
) -> None:
    processors.stripe.add_fault("/v1/account", **fault)  # type: ignore[arg-type]

    response = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/stripe", account, json=stripe_body()
    )

    assert (response.status_code, error_of(response)) == (http_status, code)
    if "retry_after_s" in fault:
        assert response.headers["retry-after"] == "4"
    assert await stored(connector, account) == []


async def test_a_replayed_state_changes_nothing(connector: Connector, account: str) -> None:
    pending = await start_stripe(connector, account)
    location = authorize_without_browser(pending["authorize_url"])
    assert (await connector.follow_callback(location)).status_code == 303
    before = await stored(connector, account)

    replay = await connector.follow_callback(location)

    assert (replay.status_code, error_of(replay)) == (400, "invalid_state")
    assert await stored(connector, account) == before
    assert len(await connector.answer(account, "ProcessorConnected")) == 1


async def test_a_forged_state_changes_nothing(connector: Connector, account: str) -> None:
    pending = await start_stripe(connector, account)
    location = authorize_without_browser(pending["authorize_url"])
    forged = location.replace("state=", "state=x")

    response = await connector.follow_callback(forged)

    assert (response.status_code, error_of(response)) == (400, "invalid_state")
    [document] = await stored(connector, account)
    assert document.status == "awaiting_authorization"


async def test_an_expired_state_changes_nothing(connector: Connector, account: str) -> None:
    pending = await start_stripe(connector, account)
    location = authorize_without_browser(pending["authorize_url"])
    # Ten minutes pass: the stored state's expiry is moved into the past.
    await connector.db[OAUTH_STATES_COLLECTION].update_many(
        {"account_id": account}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )

    response = await connector.follow_callback(location)

    assert (response.status_code, error_of(response)) == (400, "invalid_state")
    [document] = await stored(connector, account)
    assert document.status == "awaiting_authorization"
    assert connector.published_for(account)[-1]["type"] == "StripeAuthorizationRequired"


async def test_the_state_expires_ten_minutes_after_it_was_issued(connector: Connector, account: str) -> None:
    await start_stripe(connector, account)

    [state] = [s async for s in connector.db[OAUTH_STATES_COLLECTION].find({"account_id": account})]

    assert timedelta(minutes=9) < state["expires_at"] - datetime.now(UTC) <= timedelta(minutes=10)
    assert pending_state_is_hashed(state)


def pending_state_is_hashed(state: dict[str, object]) -> bool:
    return isinstance(state["_id"], str) and len(state["_id"]) == 64


async def test_authorizing_another_stripe_account_is_a_mismatch(connector: Connector, account: str) -> None:
    pending = await start_stripe(connector, account)

    response = await connector.follow_callback(
        authorize_without_browser(pending["authorize_url"], account=SAMPLE_STRIPE_OTHER_ACCOUNT_ID)
    )

    assert response.status_code == 303
    assert response.headers["location"] == RETURN_URL + "&status=error&code=account_mismatch"
    [document] = await stored(connector, account)
    assert document.status == "disconnected"
    assert document.credentials_ciphertext is None
    assert [e["type"] for e in connector.published_for(account)] == ["StripeAuthorizationRequired"]


async def test_denying_access_sends_the_browser_back_denied(connector: Connector, account: str) -> None:
    pending = await start_stripe(connector, account)

    response = await connector.follow_callback(
        authorize_without_browser(pending["authorize_url"], decision="deny")
    )

    assert response.status_code == 303
    assert response.headers["location"] == RETURN_URL + "&status=denied"
    [document] = await stored(connector, account)
    assert document.status == "disconnected"
    assert document.credentials_ciphertext is None


async def test_a_failing_code_exchange_sends_the_browser_back_with_the_code(
    connector: Connector, processors: Processors, account: str
) -> None:
    pending = await start_stripe(connector, account)
    location = authorize_without_browser(pending["authorize_url"])
    processors.stripe.add_fault("/oauth/token", status=503)

    response = await connector.follow_callback(location)

    assert response.headers["location"] == RETURN_URL + "&status=error&code=processor_unavailable"


# --- The rest of the connection's life -----------------------------------------------------------


async def test_skip_then_connect_then_resync_then_disconnect(connector: Connector, account: str) -> None:
    base = f"/v1/accounts/{account}"
    assert (await connector.call("GET", f"{base}/connection", account)).status_code == 404

    skipped = await connector.call(
        "POST", f"{base}/connections/skip", account, json={"contact_email": "o@acme.example"}
    )
    assert skipped.status_code == 200
    assert skipped.json()["status"] == "skipped"
    [skip_event] = await connector.answer(account, "ProcessorSkipped")
    assert skip_event["disabled_features"] == skipped.json()["disabled_features"]
    view = (await connector.call("GET", f"{base}/connection", account)).json()
    assert view["status"] == "skipped"
    assert view["features"]["past_cancellations"] is False

    connected = await connector.call("POST", f"{base}/connections/chargebee", account, json=chargebee_body())
    assert connected.status_code == 201
    busy = await connector.call("POST", f"{base}/imports", account)
    assert (busy.status_code, error_of(busy)) == (409, "import_in_progress")
    await connector.publish_import_event(
        {
            "type": "ImportFailed",
            "event_id": str(uuid.uuid4()),
            "account_id": account,
            "import_id": connected.json()["import_id"],
            "code": "processor_unavailable",
            "message": "Chargebee was down",
            "contact_email": "billing@acme.example",
        }
    )
    await wait_for_latest_import(connector, account, "failed")
    resync = await connector.call("POST", f"{base}/imports", account)
    assert resync.status_code == 202
    [requested] = await connector.answer(account, "ImportRequested")
    assert requested["import_id"] == resync.json()["import_id"] != connected.json()["import_id"]
    assert requested["connection_id"] == connected.json()["connection_id"]

    deleted = await connector.call("DELETE", f"{base}/connection", account)
    assert deleted.status_code == 204
    [gone] = await connector.answer(account, "ProcessorDisconnected")
    assert gone["connection_id"] == connected.json()["connection_id"]
    documents = {d.connection_id: d for d in await stored(connector, account)}
    assert documents[connected.json()["connection_id"]].credentials_ciphertext is None
    assert all(d.credentials_ciphertext is None for d in documents.values())
    view = (await connector.call("GET", f"{base}/connection", account)).json()
    assert view["status"] == "disconnected"
    assert not view["features"]["recovered_revenue"]
    again = await connector.call("POST", f"{base}/imports", account)
    assert (again.status_code, error_of(again)) == (409, "not_connected")


async def connect_stripe_by_oauth(connector: Connector, account: str) -> str:
    """Connect the sample Stripe account through OAuth; the OAuth access token our platform got."""
    pending = await start_stripe(connector, account)
    callback = await connector.follow_callback(authorize_without_browser(pending["authorize_url"]))
    assert callback.headers["location"] == RETURN_URL + "&status=connected"
    [document] = [d for d in await stored(connector, account) if d.status == "connected"]
    assert document.credentials_ciphertext is not None
    token = cipher(connector).decrypt(document.credentials_ciphertext).oauth_access_token
    assert token is not None
    return token.get_secret_value()


async def stripe_answers(connector: Connector, token: str) -> int:
    async with httpx.AsyncClient(base_url=connector.settings.stripe_api_base, timeout=10) as http:
        response = await http.get("/v1/account", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_disconnecting_stripe_revokes_our_platforms_grant(connector: Connector, account: str) -> None:
    token = await connect_stripe_by_oauth(connector, account)
    assert await stripe_answers(connector, token) == 200

    deleted = await connector.call("DELETE", f"/v1/accounts/{account}/connection", account)

    assert deleted.status_code == 204
    # The grant is gone at Stripe: the platform's token for the account no longer opens it.
    assert await stripe_answers(connector, token) == 401
    document = await connector.db[CONNECTIONS_COLLECTION].find_one({"account_id": account})
    assert document is not None
    assert "revoke_grant_of" not in document


@pytest.mark.parametrize(
    "return_url", ["https://evil.example/onboarding", "http://app.example/onboarding", "javascript:alert(1)"]
)
async def test_a_return_url_off_the_allowed_hosts_is_refused_and_nothing_stored(
    connector: Connector, account: str, return_url: str
) -> None:
    response = await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/stripe",
        account,
        json={**stripe_body(), "return_url": return_url},
    )

    assert (response.status_code, error_of(response)) == (422, "invalid_return_url")
    assert await stored(connector, account) == []
    assert (await connector.call("GET", f"/v1/accounts/{account}/connection", account)).status_code == 404


async def test_a_revocation_stripe_refuses_at_first_is_done_later(
    connector: Connector, account: str, processors: Processors
) -> None:
    token = await connect_stripe_by_oauth(connector, account)
    processors.stripe.add_fault("/oauth/deauthorize", status=503)

    deleted = await connector.call("DELETE", f"/v1/accounts/{account}/connection", account)

    assert deleted.status_code == 204  # the person is not kept waiting on Stripe
    [document] = await stored(connector, account)
    assert document.credentials_ciphertext is None
    # The relay (every second here) asks again once Stripe answers.
    for _ in range(100):
        if await stripe_answers(connector, token) == 401:
            break
        await asyncio.sleep(0.1)
    assert await stripe_answers(connector, token) == 401
    assert processors.stripe.faults() == []  # the first request was refused, as arranged
    raw = await connector.db[CONNECTIONS_COLLECTION].find_one({"account_id": account})
    assert raw is not None
    assert "revoke_grant_of" not in raw


async def test_the_latest_import_follows_the_importer(connector: Connector, account: str) -> None:
    connected = await connector.call(
        "POST", f"/v1/accounts/{account}/connections/chargebee", account, json=chargebee_body()
    )
    import_id = connected.json()["import_id"]
    common = {"account_id": account, "import_id": import_id, "processor": "chargebee"}

    await connector.publish_import_event(
        {**common, "type": "ImportStarted", "event_id": "11111111-1111-4111-8111-111111111111"}
    )
    await connector.publish_import_event(
        {
            **common,
            "type": "ImportCompleted",
            "event_id": "22222222-2222-4222-8222-222222222222",
            "resources": {"customers": {"imported": 3}},
            "past_cancellations": 1,
            "started_at": "2025-06-01T12:00:00Z",
            "finished_at": "2025-06-01T12:01:00Z",
            "contact_email": "billing@acme.example",
        }
    )

    latest = await wait_for_latest_import(connector, account, "completed")
    assert latest["import_id"] == import_id
    assert latest["finished_at"] is not None


async def wait_for_latest_import(connector: Connector, account: str, status: str) -> dict[str, object]:
    for _ in range(150):
        view = (await connector.call("GET", f"/v1/accounts/{account}/connection", account)).json()
        if view["latest_import"] and view["latest_import"]["status"] == status:
            latest: dict[str, object] = view["latest_import"]
            return latest
        await asyncio.sleep(0.2)
    raise AssertionError(f"latest import never became {status}: {view}")


async def test_tokens_are_checked_against_the_real_app(connector: Connector, account: str) -> None:
    path = f"/v1/accounts/{account}/connection"
    assert (await connector.call("GET", path)).status_code == 401
    assert (await connector.call("GET", path, "someone-else")).status_code == 403


async def test_nothing_that_came_out_holds_a_secret(connector: Connector) -> None:
    await assert_no_secret_in(connector)
