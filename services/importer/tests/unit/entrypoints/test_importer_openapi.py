"""Fuzzing the importer's API from its OpenAPI document: no server error, answers as documented.

The API only reads, so a refused request cannot change anything; the fuzzing runs over in-memory
stores holding one account's imports and past cancellations, with a token for whatever account the
case names so that it gets past authentication into the queries.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import schemathesis
from contracts.events import Processor
from contracts.records import CancellationRecord, Money
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from importer.bootstrap import build
from importer.domain.model import ImportJob, ImportStatus
from importer.settings import ImporterSettings
from importer_fakes import (
    InMemoryAnnouncedImports,
    InMemoryImportRepository,
    InMemoryRecordStore,
    InMemoryRecoveredRevenueSources,
)
from schemathesis.checks import ignored_auth, positive_data_acceptance

SECRET = "fuzzing-secret-of-enough-length-for-hs256"
ACCOUNT = "acct_fuzz"
T0 = datetime(2025, 3, 1, tzinfo=UTC)

IMPORTS, RECORDS = InMemoryImportRepository(), InMemoryRecordStore()
APP = build(
    ImporterSettings.model_validate(
        {"api_jwt_secret": SECRET, "credentials_keys": Fernet.generate_key().decode()}
    ),
    imports=IMPORTS,
    records=RECORDS,
    queries=RECORDS,
    announced=InMemoryAnnouncedImports(),
    recovered_revenue=InMemoryRecoveredRevenueSources(RECORDS),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
async def history() -> None:
    await IMPORTS.create(
        ImportJob(
            import_id="imp_1",
            account_id=ACCOUNT,
            connection_id="conn_1",
            processor=Processor.STRIPE,
            contact_email="owner@example.com",
            status=ImportStatus.COMPLETED,
            created_at=T0,
            started_at=T0,
            finished_at=T0 + timedelta(minutes=1),
        )
    )
    await RECORDS.write(
        "imp_1",
        [
            CancellationRecord(
                account_id=ACCOUNT,
                processor=Processor.STRIPE,
                object_id=f"sub_{index}",
                customer_id=f"cus_{index}",
                subscription_id=f"sub_{index}",
                canceled_at=T0 + timedelta(days=index),
                ended_at=T0 + timedelta(days=index),
                mrr_lost=Money(amount=1000, currency="USD"),
            )
            for index in range(5)
        ],
        T0,
    )


def test_every_route_is_guarded_by_the_account_token() -> None:
    document = APP.openapi()
    operations = [operation for methods in document["paths"].values() for operation in methods.values()]
    assert operations
    assert all(operation["security"] == [{"AccountToken": []}] for operation in operations)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore")
def test_fuzzing_finds_no_server_error_and_answers_as_documented(case: schemathesis.Case[Any]) -> None:
    account_id = case.path_parameters.get("account_id") if case.path_parameters else None
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    probes_authorization = str(getattr(data, "parameter", "") or "").lower() == "authorization"
    if isinstance(account_id, str) and account_id and not probes_authorization:
        now = int(time.time())
        token = jwt.encode({"sub": account_id, "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")
        case.headers["Authorization"] = f"Bearer {token}"
    # The token is set on the case itself, so schemathesis's own "invalid auth is refused" replay
    # would send it along; the routes' token checks are tested case by case instead.
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance, ignored_auth])

    assert response.status_code < 500
