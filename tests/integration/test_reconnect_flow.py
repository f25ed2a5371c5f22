"""Reconnect end to end: a Stripe connection whose credentials stopped working is reconnected in
place with a rolled key of the same account; its history stays (no record twice, no new import) and
sync applies what changed at the processor meanwhile.

Every service is a real process over the real broker and store, with the sandbox's fake Stripe. The
connection is put into ``needs_reconnect`` through the store, as the lifecycle does on a 401.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contracts import topics
from devstack.pytest_plugin import CollectEvents, RunningSandbox, RunServices
from pymongo.database import Database
from sandbox.client import SandboxAdmin, authorize_without_browser

from sandbox import SAMPLE_STRIPE_ACCOUNT_ID

IMPORT_TIMEOUT_S = 120.0
SYNC_TIMEOUT_S = 60.0
#: The importer reads the account's events every second here (60 s by default).
FAST_SYNC = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}
RETURN_URL = "http://localhost/onboarding/done"


@pytest.fixture
def stripe_admin(sandbox_processors: RunningSandbox) -> Iterator[SandboxAdmin]:
    """The fake Stripe's admin API; its data and keys are put back afterwards."""
    admin = SandboxAdmin(sandbox_processors.endpoints.stripe_api_base)
    yield admin
    admin.reset()


async def until(check: Any, what: str, timeout_s: float = SYNC_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.3)


async def authorize(http: httpx.AsyncClient, connector_url: str, account_id: str, key: str) -> dict[str, Any]:
    answer = await http.post(
        f"{connector_url}/v1/accounts/{account_id}/connections/stripe",
        json={"api_key": key, "contact_email": f"owner+{account_id}@example.com", "return_url": RETURN_URL},
    )
    assert answer.status_code == 200, answer.text
    pending: dict[str, Any] = answer.json()
    callback = await http.get(authorize_without_browser(pending["authorize_url"]))
    assert callback.status_code == 303, callback.text
    assert callback.headers["location"].endswith("status=connected")
    return pending


async def test_a_lost_stripe_connection_reconnects_in_place_and_catches_up(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    stripe_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    stripe_base = sandbox_processors.endpoints.stripe_api_base
    key = sandbox_processors.credentials.stripe_api_key
    async with httpx.AsyncClient(timeout=10, auth=(key, "")) as stripe:
        listed = await stripe.get(f"{stripe_base}/v1/subscriptions", params={"status": "active", "limit": 1})
    [active] = listed.raise_for_status().json()["data"]
    imports = await kafka_events(topics.IMPORTS)
    connections = await kafka_events(topics.CONNECTIONS)
    stack = run_services("connector", "importer", env={"importer": FAST_SYNC})
    connector = stack.url("connector")
    mine = {"account_id": account_id}
    headers = {"Authorization": f"Bearer {stack.jwt(account_id)}"}

    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        pending = await authorize(http, connector, account_id, key)
        connection_id = pending["connection_id"]
        [completed] = await imports.wait_for(
            lambda e: e.type == "ImportCompleted" and e.value["account_id"] == account_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )

        def sync_status() -> Any:
            return (mongo_db["sync_state"].find_one({"_id": connection_id}) or {}).get("status")

        await until(lambda: sync_status() == "live", "sync never went live after the import")
        cancellations = mongo_db["cancellations"].count_documents(mine)
        subscriptions = mongo_db["subscriptions"].count_documents(mine)
        assert mongo_db["cancellations"].find_one({**mine, "object_id": active["id"]}) is None

        # The account removes our app and its key is rolled: the stored credentials stop working.
        stripe_admin.deauthorize(SAMPLE_STRIPE_ACCOUNT_ID)
        new_key = stripe_admin.roll_key()["key"]
        mongo_db["connections"].update_one({"_id": connection_id}, {"$set": {"status": "needs_reconnect"}})
        await until(
            lambda: (
                (mongo_db["sync_state"].find_one({"_id": connection_id}) or {}).get("status") == "stopped"
            ),
            "sync did not stop when the connection needed reconnecting",
        )
        # Changed at the processor while nobody could read it.
        stripe_admin.cancel_subscription(active["id"], reason="cancellation_requested", comment="too pricey")

        again = await authorize(http, connector, account_id, new_key)

        assert again["connection_id"] == connection_id
        [reconnected] = await connections.wait_for(
            lambda e: e.type == "ProcessorReconnected" and e.value["account_id"] == account_id
        )
        assert (reconnected.value["connection_id"], reconnected.value["import_id"]) == (connection_id, None)
        stored = await until(
            lambda: mongo_db["cancellations"].find_one({**mine, "object_id": active["id"]}),
            "the cancellation made while disconnected never reached the store",
        )
        assert stored["comment"] == "too pricey"
        view = (await http.get(f"{connector}/v1/accounts/{account_id}/connection")).json()
        assert view["status"] == "connected"
        listed_back = await http.get(
            stack.url("importer", f"/v1/accounts/{account_id}/cancellations"), params={"limit": 100}
        )
        assert active["id"] in {item["subscription_id"] for item in listed_back.json()["items"]}

    # The history is the same one: nothing stored twice, and no import but the first.
    assert mongo_db["cancellations"].count_documents(mine) == cancellations + 1
    assert mongo_db["subscriptions"].count_documents(mine) == subscriptions
    started = [e for e in imports.events if e.type == "ImportStarted" and e.value["account_id"] == account_id]
    assert [e.value["import_id"] for e in started] == [completed.value["import_id"]]
