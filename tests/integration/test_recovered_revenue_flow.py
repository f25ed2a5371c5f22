"""Recovered revenue end to end: a Chargebee invoice paid after failed attempts and an offer applied
through the connector, counted by the importer's ``GET …/metrics/recovered-revenue``; the offer also
reaches the stored subscription record and ``billing.subscriptions.v1`` through the importer's sync.

Every service is a real process over the real broker and store; the expected figures are computed
here from what the fake Chargebee itself serves, by the SPEC's definitions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from contracts import topics
from devstack.pytest_plugin import CollectEvents, RunningSandbox, RunServices
from pymongo.database import Database
from sandbox.client import SandboxAdmin

IMPORT_TIMEOUT_S = 120.0
METRIC_TIMEOUT_S = 60.0
#: The importer reads the site's events every second here (60 s by default).
FAST_SYNC = {"SYNC_INTERVAL_S": "1", "SYNC_SCHEDULE_PERIOD_S": "0.3", "SYNC_RATE_SHARE": "1"}


@pytest.fixture
def chargebee_admin(sandbox_processors: RunningSandbox) -> Iterator[SandboxAdmin]:
    """The fake Chargebee's admin API; its data is put back afterwards (offers and payments change it)."""
    template = sandbox_processors.endpoints.chargebee_api_url_template
    admin = SandboxAdmin(template[: template.index("/sites/")])
    yield admin
    admin.reset()


async def chargebee_list(sandbox: RunningSandbox, resource: str) -> list[dict[str, Any]]:
    site = sandbox.credentials.chargebee_site
    base = sandbox.endpoints.chargebee_api_url_template.replace("{site}", site)
    singular = resource.removesuffix("s")
    found: list[dict[str, Any]] = []
    offset: str | None = None
    async with httpx.AsyncClient(auth=(sandbox.credentials.chargebee_api_key, ""), timeout=10) as client:
        while True:
            params = {"limit": "100"}
            if offset:
                params["offset"] = offset
            page = (await client.get(f"{base}/{resource}", params=params)).raise_for_status().json()
            found.extend(entry[singular] for entry in page["list"])
            offset = page.get("next_offset")
            if not offset:
                return found


def month_of(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m")


async def test_an_invoice_paid_after_failures_and_an_offer_are_recovered_revenue(
    run_services: RunServices,
    sandbox_processors: RunningSandbox,
    chargebee_admin: SandboxAdmin,
    kafka_events: CollectEvents,
    mongo_db: Database[dict[str, Any]],
    account_id: str,
) -> None:
    site = sandbox_processors.credentials.chargebee_site
    subscriptions = await chargebee_list(sandbox_processors, "subscriptions")
    active = next(s for s in subscriptions if s["status"] == "active" and not s.get("coupons"))
    currency = active["currency_code"]
    unpaid = next(
        i
        for i in await chargebee_list(sandbox_processors, "invoices")
        if i["status"] in ("payment_due", "not_paid")
        and int(i["total"]) > 0
        and i["currency_code"] == currency
    )
    chargebee_admin.pay_invoice(unpaid["id"], failed_attempts=2, site=site)
    [paid] = [i for i in await chargebee_list(sandbox_processors, "invoices") if i["id"] == unpaid["id"]]
    assert (paid["status"], len(paid["dunning_attempts"])) == ("paid", 2)
    imports = await kafka_events(topics.IMPORTS)
    published = await kafka_events(topics.BILLING_SUBSCRIPTIONS)
    stack = run_services("connector", "importer", env={"importer": FAST_SYNC})
    token = stack.jwt(account_id)
    headers = {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        connected = await http.post(
            stack.url("connector", f"/v1/accounts/{account_id}/connections/chargebee"),
            json={
                "site": sandbox_processors.credentials.chargebee_site,
                "api_key": sandbox_processors.credentials.chargebee_api_key,
                "contact_email": f"owner+{account_id}@example.com",
            },
        )
        assert connected.status_code == 201, connected.text
        import_id = connected.json()["import_id"]
        await imports.wait_for(
            lambda e: e.type == "ImportCompleted" and e.value["import_id"] == import_id,
            timeout_s=IMPORT_TIMEOUT_S,
        )
        offer = await http.post(
            stack.url("connector", f"/v1/accounts/{account_id}/offers"),
            json={
                "kind": "coupon",
                "subscription_id": active["id"],
                "coupon": {"percent_off": 20, "duration": "forever"},
            },
            headers={"Idempotency-Key": f"key-{uuid.uuid4().hex}"},
        )
        assert offer.status_code == 201, offer.text
        applied = offer.json()
        assert applied["mrr_after"] < applied["mrr_before"]

        assert applied["currency"] == currency

        # The stored record and billing.subscriptions.v1 show the coupon without another full import.
        [changed] = await published.wait_for(
            lambda e: (
                e.value.get("object_id") == active["id"]
                and e.value.get("account_id") == account_id
                and bool(e.value.get("discounts"))
            ),
            timeout_s=METRIC_TIMEOUT_S,
        )
        [at_the_fake] = [
            s for s in await chargebee_list(sandbox_processors, "subscriptions") if s["id"] == active["id"]
        ]
        coupon_ids = [c["coupon_id"] for c in at_the_fake["coupons"]]
        assert len(coupon_ids) == 1
        assert [d["coupon_id"] for d in changed.value["discounts"]] == coupon_ids
        scope = {"account_id": account_id, "processor": "chargebee", "object_id": active["id"]}
        deadline = time.monotonic() + METRIC_TIMEOUT_S
        while not (mongo_db["subscriptions"].find_one(scope) or {}).get("discounts"):
            assert time.monotonic() < deadline, "the stored subscription never showed the coupon"
            await asyncio.sleep(0.3)
        stored = mongo_db["subscriptions"].find_one(scope) or {}
        assert [d["coupon_id"] for d in stored["discounts"]] == coupon_ids

        # What the SPEC counts, from the fake's own invoices: paid after at least one failed attempt.
        months = sorted({month_of(int(paid["paid_at"])), applied["applied_at"][:7]})
        invoices = await chargebee_list(sandbox_processors, "invoices")

        def expected_row(month: str) -> dict[str, Any]:
            recovered = [
                i
                for i in invoices
                if i["status"] == "paid"
                and i.get("dunning_attempts")
                and month_of(int(i["paid_at"])) == month
                and i["currency_code"] == currency
            ]
            saved = applied["applied_at"][:7] == month
            return {
                "month": month,
                "currency": currency,
                "saved_subscriptions": 1 if saved else 0,
                "saved_mrr": applied["mrr_after"] if saved else 0,
                "recovered_invoices": len(recovered),
                "recovered_amount": sum(int(i["amount_paid"]) for i in recovered),
            }

        expected = [expected_row(month) for month in months]
        assert sum(row["recovered_invoices"] for row in expected) >= 1

        # The offer reaches the importer through offers.v1: wait until it is counted.
        deadline = time.monotonic() + METRIC_TIMEOUT_S
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            answer = await http.get(
                stack.url("importer", f"/v1/accounts/{account_id}/metrics/recovered-revenue"),
                params={"from": months[0], "to": months[-1]},
            )
            assert answer.status_code == 200, answer.text
            rows = answer.json()["items"]
            if [row for row in rows if row["currency"] == currency] == expected:
                break
            await asyncio.sleep(0.5)

    assert [row for row in rows if row["currency"] == currency] == expected
