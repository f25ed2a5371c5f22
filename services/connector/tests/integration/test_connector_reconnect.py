"""Reconnecting a ``needs_reconnect`` connection over HTTP and the Kafka intake, against the real
store, the real broker and the sandbox's fake processors.

The connection is put into ``needs_reconnect`` through the store, as the lifecycle does when the
processor refuses its credentials.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from connector_integration_kit import Connector, assert_no_secret_in
from contracts.connections import CONNECTIONS_COLLECTION, StoredConnection
from contracts.sync import SYNC_STATE_COLLECTION

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_PC1_SITE,
    SAMPLE_CHARGEBEE_READ_ONLY_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_KEY,
    SAMPLE_STRIPE_RESTRICTED_KEY,
    authorize_without_browser,
)

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

RETURN_URL = "https://app.example/onboarding?step=reconnect"


def error_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def document(connector: Connector, connection_id: str) -> dict[str, Any]:
    found = await connector.db[CONNECTIONS_COLLECTION].find_one({"_id": connection_id})
    assert found is not None
    found.pop("outbox", None)
    return dict(found)


async def lose(connector: Connector, connection_id: str) -> None:
    """What the lifecycle does when the processor answers 401 to the stored credentials."""
    await connector.db[CONNECTIONS_COLLECTION].update_one(
        {"_id": connection_id}, {"$set": {"status": "needs_reconnect"}}
    )


async def synced_until_now(connector: Connector, connection_id: str, account: str, processor: str) -> None:
    """The importer's record of a sync that stopped a moment ago (its cursor within the history)."""
    await connector.db[SYNC_STATE_COLLECTION].insert_one(
        {
            "_id": connection_id,
            "account_id": account,
            "processor": processor,
            "status": "stopped",
            "cursor_s": int(time.time()) - 3600,
        }
    )


async def connect_stripe(connector: Connector, account: str, key: str = SAMPLE_STRIPE_KEY) -> httpx.Response:
    return await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/stripe",
        account,
        json={"api_key": key, "contact_email": "owner@acme.example", "return_url": RETURN_URL},
    )


async def connect_chargebee(
    connector: Connector, account: str, site: str = SAMPLE_CHARGEBEE_SITE, key: str = SAMPLE_CHARGEBEE_KEY
) -> httpx.Response:
    return await connector.call(
        "POST",
        f"/v1/accounts/{account}/connections/chargebee",
        account,
        json={"site": site, "api_key": key, "contact_email": "billing@acme.example"},
    )


async def connected_stripe(connector: Connector, account: str) -> str:
    pending = (await connect_stripe(connector, account)).json()
    callback = await connector.follow_callback(authorize_without_browser(pending["authorize_url"]))
    assert callback.status_code == 303
    await connector.answer(account, "ProcessorConnected")
    return str(pending["connection_id"])


async def test_stripe_reconnects_in_place_with_another_key_of_the_same_account(
    connector: Connector, account: str
) -> None:
    connection_id = await connected_stripe(connector, account)
    await lose(connector, connection_id)
    await synced_until_now(connector, connection_id, account, "stripe")
    before = await document(connector, connection_id)

    answer = await connect_stripe(connector, account, SAMPLE_STRIPE_RESTRICTED_KEY)

    assert answer.status_code == 200, answer.text
    pending = answer.json()
    assert (pending["connection_id"], pending["status"]) == (connection_id, "awaiting_authorization")
    waiting = await document(connector, connection_id)
    assert waiting["status"] == "needs_reconnect"
    assert waiting["credentials_ciphertext"] == before["credentials_ciphertext"]

    callback = await connector.follow_callback(authorize_without_browser(pending["authorize_url"]))

    assert callback.status_code == 303
    assert callback.headers["location"] == RETURN_URL + "&status=connected"
    after = StoredConnection.model_validate(await document(connector, connection_id))
    assert after.status == "connected"
    assert (after.created_at, after.connected_at) == (
        StoredConnection.model_validate(before).created_at,
        StoredConnection.model_validate(before).connected_at,
    )
    assert after.credentials_ciphertext is not None
    assert after.credentials_ciphertext != before["credentials_ciphertext"]
    credentials = connector.settings.credential_cipher().decrypt(after.credentials_ciphertext)
    assert credentials.api_key.get_secret_value() == SAMPLE_STRIPE_RESTRICTED_KEY
    assert credentials.oauth_access_token is not None
    [reconnected] = await connector.answer(account, "ProcessorReconnected")
    assert (reconnected["connection_id"], reconnected["processor_account_id"]) == (
        connection_id,
        SAMPLE_STRIPE_ACCOUNT_ID,
    )
    assert reconnected["import_id"] is None  # sync resumes from its cursor
    assert len(await connector.answer(account, "ProcessorConnected")) == 1
    view = await connector.call("GET", f"/v1/accounts/{account}/connection", account)
    assert view.json()["status"] == "connected"
    await assert_no_secret_in(connector)


async def test_a_key_of_another_stripe_account_is_refused_and_nothing_changes(
    connector: Connector, account: str
) -> None:
    connection_id = await connected_stripe(connector, account)
    await lose(connector, connection_id)
    before = await document(connector, connection_id)

    answer = await connect_stripe(connector, account, SAMPLE_STRIPE_OTHER_ACCOUNT_KEY)

    assert (answer.status_code, error_of(answer)) == (409, "different_processor_account")
    assert await document(connector, connection_id) == before
    assert [e for e in connector.published_for(account) if e["type"] == "ProcessorReconnected"] == []


async def test_chargebee_reconnects_in_place_and_keeps_its_webhook_credentials(
    connector: Connector, account: str
) -> None:
    first = (await connect_chargebee(connector, account)).json()
    connection_id = first["connection_id"]
    await lose(connector, connection_id)
    before = await document(connector, connection_id)

    answer = await connect_chargebee(connector, account, key=SAMPLE_CHARGEBEE_READ_ONLY_KEY)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["connection_id"], body["status"], body["reconnected"]) == (connection_id, "connected", True)
    assert "webhook" not in body
    # No sync to resume from (the importer never recorded one): a full import is announced.
    assert body["import_id"]
    after = await document(connector, connection_id)
    assert after["status"] == "connected"
    assert after["webhook_password_sha256"] == before["webhook_password_sha256"]
    assert after["latest_import"]["import_id"] == body["import_id"]
    assert (after["write_access"], after["write_access_reason"]) == (False, "read_only_key")
    credentials = connector.settings.credential_cipher().decrypt(after["credentials_ciphertext"])
    assert credentials.api_key.get_secret_value() == SAMPLE_CHARGEBEE_READ_ONLY_KEY
    [reconnected] = await connector.answer(account, "ProcessorReconnected")
    assert (reconnected["connection_id"], reconnected["import_id"]) == (connection_id, body["import_id"])


async def test_another_chargebee_site_is_refused_and_nothing_changes(
    connector: Connector, account: str
) -> None:
    connection_id = (await connect_chargebee(connector, account)).json()["connection_id"]
    await lose(connector, connection_id)
    before = await document(connector, connection_id)

    answer = await connect_chargebee(connector, account, SAMPLE_CHARGEBEE_PC1_SITE, SAMPLE_CHARGEBEE_PC1_KEY)

    assert (answer.status_code, error_of(answer)) == (409, "different_processor_account")
    assert await document(connector, connection_id) == before


async def test_a_connected_account_is_still_already_connected(connector: Connector, account: str) -> None:
    await connect_chargebee(connector, account)

    again = await connect_chargebee(connector, account, key=SAMPLE_CHARGEBEE_READ_ONLY_KEY)
    stripe = await connect_stripe(connector, account)

    assert (again.status_code, error_of(again)) == (409, "already_connected")
    assert (stripe.status_code, error_of(stripe)) == (409, "already_connected")


async def test_a_redelivered_intake_request_reconnects_once(connector: Connector, account: str) -> None:
    connection_id = (await connect_chargebee(connector, account)).json()["connection_id"]
    await lose(connector, connection_id)
    await synced_until_now(connector, connection_id, account, "chargebee")
    request = {
        "event_id": str(uuid.uuid4()),
        "type": "ChargebeeCredentialsSubmitted",
        "account_id": account,
        "site": SAMPLE_CHARGEBEE_SITE,
        "api_key_sealed": connector.secrets.seal(SAMPLE_CHARGEBEE_READ_ONLY_KEY),
        "contact_email": "billing@acme.example",
    }

    await connector.submit(request)
    [reconnected] = await connector.answer(account, "ProcessorReconnected")
    await connector.submit(request)
    await connector.submit({"type": "SkipRequested", "account_id": account})
    await connector.answer(account, "ConnectionRejected")  # the skip after it, answered in order

    assert (reconnected["connection_id"], reconnected["import_id"]) == (connection_id, None)
    assert [e["type"] for e in connector.published_for(account)].count("ProcessorReconnected") == 1
