"""Connect → import → email, through the public contract only, with every service a real process.

The truth is asked of the fake processor itself over its API, the outcome read from the store, the
topics and the mail catcher: nothing here knows how the services work inside.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from contracts import topics
from contracts.events import SKIP_DISABLED_FEATURES
from devstack.mailcatcher import MailCatcher
from devstack.pytest_plugin import CollectEvents, RunningSandbox, RunServices
from otlp_kit import OtlpReceiver
from pymongo.database import Database

IMPORT_TIMEOUT_S = 120.0


async def chargebee_objects(sandbox: RunningSandbox, resource: str) -> list[dict[str, Any]]:
    """Every object of a resource as the fake Chargebee serves it, paged like any client would."""
    site = sandbox.credentials.chargebee_site
    base = sandbox.endpoints.chargebee_api_url_template.replace("{site}", site)
    singular = resource.removesuffix("s")
    found: list[dict[str, Any]] = []
    offset: str | None = None
    async with httpx.AsyncClient(auth=(sandbox.credentials.chargebee_api_key, ""), timeout=10) as client:
        while True:
            params = {"limit": "100", "sort_by[asc]": "created_at"}
            if offset:
                params["offset"] = offset
            page = (await client.get(f"{base}/{resource}", params=params)).raise_for_status().json()
            found.extend(entry[singular] for entry in page["list"])
            offset = page.get("next_offset")
            if not offset:
                return found


async def connect_chargebee(
    connector_url: str, token: str, account_id: str, sandbox: RunningSandbox, **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"{connector_url}/v1/accounts/{account_id}/connections/chargebee",
            json={
                "site": sandbox.credentials.chargebee_site,
                "api_key": sandbox.credentials.chargebee_api_key,
                "contact_email": f"owner+{account_id}@example.com",
            },
            headers={"Authorization": f"Bearer {token}", **headers},
        )


async def test_a_chargebee_connection_imports_everything_and_sends_one_email(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    mailbox: MailCatcher,
    account_id: str,
) -> None:
    customers = await chargebee_objects(sandbox_processors, "customers")
    subscriptions = await chargebee_objects(sandbox_processors, "subscriptions")
    cancelled = [s for s in subscriptions if s["status"] == "cancelled"]
    assert customers, "the sandbox's sample data should have customers"
    assert cancelled, "the sandbox's sample data should have cancelled subscriptions"
    imports = await kafka_events(topics.IMPORTS)
    everything = await kafka_events([*topics.PUBLIC_TOPICS, "importer.page-requests.v1"])
    stack = run_services("connector", "importer", "notifier")
    token = stack.jwt(account_id)

    response = await connect_chargebee(stack.url("connector"), token, account_id, sandbox_processors)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "connected"
    assert body["mode"] == "test"
    import_id = body["import_id"]
    [completed] = await imports.wait_for(
        lambda e: e.type == "ImportCompleted" and e.value["import_id"] == import_id,
        timeout_s=IMPORT_TIMEOUT_S,
    )
    event = completed.value
    assert event["account_id"] == account_id
    assert event["processor"] == "chargebee"
    assert event["resources"]["customers"] == {"imported": len(customers)}
    assert event["resources"]["subscriptions"] == {"imported": len(subscriptions)}
    assert event["past_cancellations"] == len(cancelled)
    assert completed.key == account_id

    scope = {"account_id": account_id, "processor": "chargebee"}
    stored_customers = {d["object_id"] for d in mongo_db["customers"].find(scope)}
    stored_subscriptions = {d["object_id"] for d in mongo_db["subscriptions"].find(scope)}
    assert stored_customers == {c["id"] for c in customers}
    assert stored_subscriptions == {s["id"] for s in subscriptions}
    assert mongo_db["cancellations"].count_documents(scope) == len(cancelled)

    contact = f"owner+{account_id}@example.com"
    [email] = await mailbox.wait_for_messages_async(1, to=contact, timeout_s=60)
    assert email.to == (contact,)
    assert "Chargebee" in email.subject
    assert "complete" in email.subject.lower()
    for part in (email.text, email.html):
        assert part is not None
        assert f"{len(customers):,}" in part
        assert f"{len(subscriptions):,}" in part

    async with httpx.AsyncClient(timeout=10) as http:
        latest = await http.get(
            stack.url("importer", f"/v1/accounts/{account_id}/imports/latest"),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert latest.status_code == 200, latest.text
    assert latest.json()["import_id"] == import_id
    assert latest.json()["status"] == "completed"
    assert latest.json()["resources"]["customers"] == {"imported": len(customers)}
    # One email only, even after everything has settled.
    assert [m for m in mailbox.messages if contact in m.recipients] == [email]

    # The processor key is nowhere but in its ciphertext: not in a log line, an event or a document.
    secret = sandbox_processors.credentials.chargebee_api_key
    stack.stop()
    for service in ("connector", "importer", "notifier"):
        log = stack[service].log_path.read_text(errors="replace")
        assert log, f"{service} logged nothing"
        assert secret not in log, f"{service} logged the processor key"
    published = [repr((e.value, e.headers)) for e in everything.events]
    assert any(account_id in text for text in published)
    assert not [text for text in published if secret in text]
    for collection in mongo_db.list_collection_names():
        for document in mongo_db[collection].find():
            assert secret not in repr(document), f"the processor key is stored in plain text in {collection}"


async def test_skipping_announces_the_features_that_are_unavailable(
    run_services: RunServices, kafka_events: CollectEvents, mailbox: MailCatcher, account_id: str
) -> None:
    connections = await kafka_events(topics.CONNECTIONS)
    stack = run_services("connector")

    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            stack.url("connector", f"/v1/accounts/{account_id}/connections/skip"),
            json={"contact_email": "owner@example.com"},
            headers={"Authorization": f"Bearer {stack.jwt(account_id)}"},
        )

    expected = sorted(feature.value for feature in SKIP_DISABLED_FEATURES)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "skipped"
    assert sorted(response.json()["disabled_features"]) == expected
    [skipped] = await connections.wait_for(lambda e: e.type == "ProcessorSkipped" and e.key == account_id)
    assert sorted(skipped.value["disabled_features"]) == expected
    assert skipped.value["account_id"] == account_id


@pytest.mark.parametrize(
    ("site", "api_key", "status", "code"),
    [
        ("acme-test", "test_wrong_key_0000000000000000", 422, "key_rejected"),
        ("nobody-here-test", None, 422, "site_not_found"),
        ("Not A Site!", None, 422, "invalid_site"),
    ],
    ids=["wrong-key", "unknown-site", "malformed-site"],
)
async def test_bad_chargebee_input_is_refused_and_changes_nothing(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
    site: str,
    api_key: str | None,
    status: int,
    code: str,
) -> None:
    connections = await kafka_events(topics.CONNECTIONS)
    stack = run_services("connector")
    sandbox_root = sandbox_processors.endpoints.chargebee_api_url_template.split("/sites/")[0]
    auth = {"Authorization": f"Bearer {stack.jwt(account_id)}"}
    async with httpx.AsyncClient(timeout=30) as http:
        before = (await http.get(f"{sandbox_root}/_sandbox/stats")).json()
        response = await http.post(
            stack.url("connector", f"/v1/accounts/{account_id}/connections/chargebee"),
            json={
                "site": site,
                "api_key": api_key or sandbox_processors.credentials.chargebee_api_key,
                "contact_email": "owner@example.com",
            },
            headers=auth,
        )
        after = (await http.get(f"{sandbox_root}/_sandbox/stats")).json()
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert mongo_db["connections"].count_documents({"account_id": account_id}) == 0
        # A skip afterwards must be the first thing the connector ever published for this account.
        await http.post(
            stack.url("connector", f"/v1/accounts/{account_id}/connections/skip"),
            json={"contact_email": "owner@example.com"},
            headers=auth,
        )
    seen = await connections.wait_for(lambda e: e.key == account_id)
    assert [e.type for e in seen] == ["ProcessorSkipped"]
    if code == "invalid_site":
        assert after == before, "a malformed site must not reach any processor"


async def test_one_connect_import_email_run_is_one_trace(
    run_services: RunServices,
    service_env: Any,
    sandbox_processors: RunningSandbox,
    mailbox: MailCatcher,
    account_id: str,
) -> None:
    with OtlpReceiver() as receiver:
        tracing = {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        overrides = {"OTEL_BSP_SCHEDULE_DELAY": "200", **tracing}
        stack = run_services(
            "connector",
            "importer",
            "notifier",
            env=dict.fromkeys(("connector", "importer", "notifier"), overrides),
        )
        trace_parent_id = uuid.uuid4().hex
        response = await connect_chargebee(
            stack.url("connector"),
            stack.jwt(account_id),
            account_id,
            sandbox_processors,
            traceparent=f"00-{trace_parent_id}-{uuid.uuid4().hex[:16]}-01",
        )
        assert response.status_code == 201, response.text
        await mailbox.wait_for_messages_async(
            1, to=f"owner+{account_id}@example.com", timeout_s=IMPORT_TIMEOUT_S
        )
        stack.stop()  # flushes every exporter

        spans = [span for span in receiver.snapshot() if span.trace_id == trace_parent_id]

    assert {span.service for span in spans} >= {"connector", "importer", "notifier"}
