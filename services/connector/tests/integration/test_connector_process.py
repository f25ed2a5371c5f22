"""``python -m connector`` as a real process, and ``connector-rotate-credentials`` as a real command."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from connector_integration_kit import TEST_SECRETS
from contracts.connections import CONNECTIONS_COLLECTION, CredentialCipher
from contracts.topics import CONNECTIONS

from sandbox import SAMPLE_CHARGEBEE_KEY, SAMPLE_CHARGEBEE_SITE, SAMPLE_STRIPE_KEY, authorize_without_browser

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]


async def test_the_connector_process_connects_rotates_and_never_logs_a_secret(
    run_services: Any, kafka_events: Any, stack_settings: Any, mongo_db: Any
) -> None:
    answers = await kafka_events(CONNECTIONS)
    stack = run_services("connector")
    base = stack.url("connector")
    cb_account, stripe_account = f"acc_{uuid.uuid4().hex[:12]}", f"acc_{uuid.uuid4().hex[:12]}"

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/readyz")).json()["checks"] == {"kafka": "ok", "mongodb": "ok"}
        assert "connector_http_request_duration_seconds" in (await http.get("/metrics")).text
        assert (await http.get("/openapi.json")).json()["info"]["title"] == "Connector"

        connected = await http.post(
            f"/v1/accounts/{cb_account}/connections/chargebee",
            json={
                "site": SAMPLE_CHARGEBEE_SITE,
                "api_key": SAMPLE_CHARGEBEE_KEY,
                "contact_email": "b@acme.example",
            },
            headers={"Authorization": f"Bearer {stack.jwt(cb_account)}"},
        )
        assert connected.status_code == 201, connected.text

        pending = await http.post(
            f"/v1/accounts/{stripe_account}/connections/stripe",
            json={"api_key": SAMPLE_STRIPE_KEY, "contact_email": "o@acme.example"},
            headers={"Authorization": f"Bearer {stack.jwt(stripe_account)}"},
        )
        assert pending.status_code == 200, pending.text
        location = await asyncio.to_thread(authorize_without_browser, pending.json()["authorize_url"])
        assert location.startswith(base + "/v1/oauth/stripe/callback?")
        page = await http.get(location.removeprefix(base))
        assert page.status_code == 200
        assert "Stripe is connected" in page.text

    [cb_event] = await answers.wait_for(lambda e: e.key == cb_account and e.type == "ProcessorConnected")
    [stripe_event] = await answers.wait_for(
        lambda e: e.key == stripe_account and e.type == "ProcessorConnected"
    )
    assert cb_event.value["import_id"] == connected.json()["import_id"]
    assert stripe_event.value["processor"] == "stripe"

    # Rotation: a new key goes first; the command moves every stored credential under it.
    old_keys = stack_settings.secrets.credentials_keys
    newest = base64.urlsafe_b64encode(os.urandom(32)).decode()
    command = shutil.which("connector-rotate-credentials")
    assert command is not None
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MONGODB_URL": stack_settings.mongodb_url,
        "MONGODB_DATABASE": stack_settings.mongodb_database,
        "CREDENTIALS_KEYS": f"{newest},{old_keys}",
    }
    result = await asyncio.to_thread(
        subprocess.run, [command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["rotated"] == 2
    assert summary["unreadable"] == []
    only_newest = CredentialCipher([newest])
    stored = list(mongo_db[CONNECTIONS_COLLECTION].find({"credentials_ciphertext": {"$exists": True}}))
    assert {only_newest.decrypt(d["credentials_ciphertext"]).api_key.get_secret_value() for d in stored} == {
        SAMPLE_CHARGEBEE_KEY,
        SAMPLE_STRIPE_KEY,
    }
    for secret in (newest, *TEST_SECRETS):
        assert secret not in result.stdout + result.stderr

    # Everything the process wrote: one line per request, none holding a secret.
    log = stack["connector"].log_path.read_text()
    requests = [json.loads(line) for line in log.splitlines() if '"http.request"' in line]
    assert {(r["route"], r["status"]) for r in requests} >= {
        ("/v1/accounts/{account_id}/connections/chargebee", 201),
        ("/v1/accounts/{account_id}/connections/stripe", 200),
        ("/v1/oauth/stripe/callback", 200),
    }
    callback_line = next(r for r in requests if r["route"] == "/v1/oauth/stripe/callback")
    assert callback_line["account_id"] == stripe_account
    assert callback_line["outcome"] == "connected"
    events = json.dumps([e.value for e in answers.events])
    secrets = (
        *TEST_SECRETS,
        stack_settings.secrets.api_jwt_secret,
        stack_settings.secrets.connector_private_key,
    )
    for secret in (*secrets, *old_keys.split(",")):
        assert secret not in log
        assert secret not in events
