"""``GET …/metrics/recovered-revenue`` on in-memory stores, and the offers.v1 projection it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
from contracts.events import OfferApplied, Processor
from contracts.records import InvoiceRecord, SubscriptionItem, SubscriptionRecord
from cryptography.fernet import Fernet
from importer.bootstrap import build
from importer.domain.model import ImportJob, ImportStatus
from importer.entrypoints.offers import offer_event_handler
from importer.settings import ImporterSettings
from importer_fakes import InMemoryImportRepository, InMemoryRecordStore, InMemoryRecoveredRevenueSources

SECRET = "unit-test-secret-of-enough-length-for-hs256"
ACCOUNT = "acct_rr"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def auth() -> dict[str, str]:
    claims = {"sub": ACCOUNT, "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def test_recovered_revenue_from_offers_announced_and_invoices_recovered() -> None:
    imports, records = InMemoryImportRepository(), InMemoryRecordStore()
    sources = InMemoryRecoveredRevenueSources(records)
    settings = ImporterSettings.model_validate(
        {"api_jwt_secret": SECRET, "credentials_keys": Fernet.generate_key().decode()}
    )
    app = build(settings, imports=imports, records=records, queries=records, recovered_revenue=sources)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://importer")
    await imports.create(
        ImportJob(
            import_id="imp_1",
            account_id=ACCOUNT,
            connection_id="conn_1",
            processor=Processor.STRIPE,
            contact_email="owner@example.com",
            status=ImportStatus.COMPLETED,
            created_at=T0,
        )
    )
    item = SubscriptionItem(unit_amount=5000)
    common = {"account_id": ACCOUNT, "processor": Processor.STRIPE, "currency": "USD", "items": [item]}
    await records.write(
        "imp_1",
        [
            SubscriptionRecord(
                object_id="sub_a", customer_id="cus_a", status="active", started_at=T0, **common
            ),
            InvoiceRecord(
                account_id=ACCOUNT,
                processor=Processor.STRIPE,
                object_id="in_1",
                status="paid",
                currency="USD",
                amount_paid=5000,
                paid_at=T0 + timedelta(days=3),
                attempt_count=3,
            ),
        ],
        T0,
    )
    applied = OfferApplied(
        account_id=ACCOUNT,
        offer_id="offer_1",
        processor=Processor.STRIPE,
        subscription_id="sub_a",
        customer_id="cus_a",
        kind="coupon",
        currency="USD",
        mrr_before=5000,
        mrr_after=3750,
        applied_at=T0 + timedelta(days=2),
    )
    handle = offer_event_handler(sources)
    await handle(applied)
    await handle(applied)  # redelivered: kept once

    response = await client.get(
        f"/v1/accounts/{ACCOUNT}/metrics/recovered-revenue",
        headers=auth(),
        params={"from": "2025-03", "to": "2025-04"},
    )

    assert response.status_code == 200, response.text
    march, april = response.json()["items"]
    assert march == {
        "month": "2025-03",
        "currency": "USD",
        "saved_subscriptions": 1,
        "saved_mrr": 3750,
        "recovered_invoices": 1,
        "recovered_amount": 5000,
    }
    assert april == {
        **march,
        "month": "2025-04",
        "saved_subscriptions": 0,
        "saved_mrr": 0,
        "recovered_invoices": 0,
        "recovered_amount": 0,
    }
    reversed_range = await client.get(
        f"/v1/accounts/{ACCOUNT}/metrics/recovered-revenue",
        headers=auth(),
        params={"from": "2025-05", "to": "2025-04"},
    )
    assert reversed_range.status_code == 422
