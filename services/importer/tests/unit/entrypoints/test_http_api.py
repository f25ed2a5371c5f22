"""The importer's HTTP API on in-memory stores: shapes of the SPEC, bearer tokens, errors, pagination."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
import jwt
import pytest
from contracts.events import Processor
from contracts.records import CancellationRecord, Money, SubscriptionItem, SubscriptionRecord
from cryptography.fernet import Fernet
from importer.bootstrap import build
from importer.domain.model import ImportJob, ImportStatus
from importer.settings import ImporterSettings
from importer_fakes import InMemoryAnnouncedImports, InMemoryImportRepository, InMemoryRecordStore

SECRET = "unit-test-secret-of-enough-length-for-hs256"
ACCOUNT = "acct_1"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def token(subject: str = ACCOUNT, *, ttl_s: int = 600, secret: str = SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": subject, "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")


def auth(subject: str = ACCOUNT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(subject)}"}


def job(import_id: str, status: ImportStatus, created_at: datetime, **changes: object) -> ImportJob:
    values: dict[str, object] = {
        "import_id": import_id,
        "account_id": ACCOUNT,
        "connection_id": "conn_1",
        "processor": Processor.STRIPE,
        "contact_email": "owner@example.com",
        "status": status,
        "created_at": created_at,
        "started_at": created_at + timedelta(seconds=1),
        "resources": {"customers": 10, "invoices": 3},
    }
    values.update(changes)
    return ImportJob(**values)  # type: ignore[arg-type]


def cancellation(index: int, canceled_at: datetime | None) -> CancellationRecord:
    return CancellationRecord(
        account_id=ACCOUNT,
        processor=Processor.STRIPE,
        object_id=f"sub_{index:03d}",
        customer_id=f"cus_{index:03d}",
        subscription_id=f"sub_{index:03d}",
        canceled_at=canceled_at,
        ended_at=canceled_at,
        reason="cancellation_requested",
        mrr_lost=Money(amount=1000 + index, currency="USD"),
        plan="price_pro",
    )


@pytest.fixture
def announced() -> InMemoryAnnouncedImports:
    return InMemoryAnnouncedImports()


@pytest.fixture
async def api(
    announced: InMemoryAnnouncedImports,
) -> tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore]:
    imports, records = InMemoryImportRepository(), InMemoryRecordStore()
    settings = ImporterSettings.model_validate(
        {"api_jwt_secret": SECRET, "credentials_keys": Fernet.generate_key().decode()}
    )
    app = build(settings, imports=imports, records=records, queries=records, announced=announced)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://importer")
    return client, imports, records


async def test_an_import_in_the_spec_shape(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, imports, _ = api
    await imports.create(
        job(
            "imp_done",
            ImportStatus.COMPLETED,
            T0,
            finished_at=T0 + timedelta(minutes=2),
            past_cancellations=4,
        )
    )

    response = await client.get(f"/v1/accounts/{ACCOUNT}/imports/imp_done", headers=auth())

    assert response.status_code == 200
    assert response.json() == {
        "import_id": "imp_done",
        "processor": "stripe",
        "status": "completed",
        "started_at": "2025-03-01T00:00:01Z",
        "finished_at": "2025-03-01T00:02:00Z",
        "resources": {"customers": {"imported": 10}, "invoices": {"imported": 3}},
        "past_cancellations": 4,
    }


async def test_a_request_is_served_on_the_event_loop_without_a_worker_thread(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FastAPI calls a plain-function dependency in a worker thread; the routes' are coroutines.
    client, imports, _ = api
    await imports.create(job("imp_done", ImportStatus.COMPLETED, T0, finished_at=T0 + timedelta(minutes=2)))

    async def no_worker_thread(func: object, *args: object, **kwargs: object) -> object:
        raise AssertionError(f"a worker thread was used for {func!r}")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_worker_thread)
    response = await client.get(f"/v1/accounts/{ACCOUNT}/imports/imp_done", headers=auth())

    assert response.status_code == 200
    assert response.json()["import_id"] == "imp_done"


async def test_latest_is_the_newest_and_a_finalizing_import_shows_as_running(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, imports, _ = api
    await imports.create(job("imp_old", ImportStatus.COMPLETED, T0))
    await imports.create(job("imp_new", ImportStatus.FINALIZING, T0 + timedelta(days=1)))

    response = await client.get(f"/v1/accounts/{ACCOUNT}/imports/latest", headers=auth())

    assert response.json()["import_id"] == "imp_new"
    assert response.json()["status"] == "running"
    assert response.json()["finished_at"] is None


async def test_a_failed_import_carries_its_error(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, imports, _ = api
    await imports.create(
        job(
            "imp_bad", ImportStatus.FAILED, T0, error_code="key_rejected", error_message="the key was revoked"
        )
    )

    body = (await client.get(f"/v1/accounts/{ACCOUNT}/imports/imp_bad", headers=auth())).json()

    assert body["status"] == "failed"
    assert body["error"] == {"code": "key_rejected", "message": "the key was revoked"}


# Each case makes its headers when it runs: a token minted at collection
# could expire before a long run reaches it.
@pytest.mark.parametrize(
    ("make_headers", "status"),
    [
        (lambda: {}, 401),
        (lambda: {"Authorization": "Bearer not-a-jwt"}, 401),
        (
            lambda: {"Authorization": f"Bearer {token(secret='another-secret-of-enough-length-for-hs256')}"},
            401,
        ),
        (lambda: {"Authorization": f"Bearer {token(ttl_s=-60)}"}, 401),
        (lambda: {"Authorization": f"Basic {token()}"}, 401),
        (lambda: {"Authorization": f"Bearer {token('acct_other')}"}, 403),
    ],
    ids=["missing", "garbage", "wrong_secret", "expired", "not_bearer", "other_account"],
)
async def test_tokens_are_checked(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
    make_headers: Callable[[], dict[str, str]],
    status: int,
) -> None:
    client, imports, _ = api
    await imports.create(job("imp_1", ImportStatus.RUNNING, T0))
    headers = make_headers()

    for path in ("imports/imp_1", "imports/latest", "cancellations", "metrics/churn?from=2025-01&to=2025-02"):
        response = await client.get(f"/v1/accounts/{ACCOUNT}/{path}", headers=headers)
        assert response.status_code == status, path
        assert set(response.json()["error"]) == {"code", "message"}


async def test_a_token_without_exp_is_refused(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, _, _ = api
    unbounded = jwt.encode({"sub": ACCOUNT}, SECRET, algorithm="HS256")

    response = await client.get(
        f"/v1/accounts/{ACCOUNT}/imports/latest", headers={"Authorization": f"Bearer {unbounded}"}
    )

    assert response.status_code == 401


async def test_an_unknown_or_foreign_import_is_not_found(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, imports, _ = api
    await imports.create(job("imp_theirs", ImportStatus.COMPLETED, T0, account_id="acct_other"))

    assert (await client.get(f"/v1/accounts/{ACCOUNT}/imports/imp_none", headers=auth())).status_code == 404
    foreign = await client.get(f"/v1/accounts/{ACCOUNT}/imports/imp_theirs", headers=auth())
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"
    assert (await client.get(f"/v1/accounts/{ACCOUNT}/imports/latest", headers=auth())).status_code == 404


async def test_cancellations_page_newest_first_with_a_cursor_each_exactly_once(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, _, records = api
    # Two pairs share a cancellation time: the cursor must neither skip nor repeat them.
    moments = [T0 + timedelta(days=index // 2) for index in range(11)]
    await records.write("imp_1", [cancellation(index, at) for index, at in enumerate(moments)], T0)

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = (
            await client.get(f"/v1/accounts/{ACCOUNT}/cancellations", headers=auth(), params=params)
        ).json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert sorted(item["subscription_id"] for item in seen) == sorted(
        f"sub_{index:03d}" for index in range(11)
    )
    assert [item["canceled_at"] for item in seen] == sorted(
        (item["canceled_at"] for item in seen), reverse=True
    )
    first = seen[0]
    assert set(first) == {
        "processor",
        "customer_id",
        "subscription_id",
        "canceled_at",
        "ended_at",
        "reason",
        "reason_code",
        "feedback",
        "comment",
        "mrr_lost",
        "plan",
    }
    assert first["mrr_lost"] == {"amount": 1010, "currency": "USD"}


async def test_cancellations_between_since_and_until(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, _, records = api
    await records.write("imp_1", [cancellation(index, T0 + timedelta(days=index)) for index in range(10)], T0)

    body = (
        await client.get(
            f"/v1/accounts/{ACCOUNT}/cancellations",
            headers=auth(),
            params={"since": "2025-03-03T00:00:00Z", "until": "2025-03-06T00:00:00Z"},
        )
    ).json()

    assert [item["subscription_id"] for item in body["items"]] == [
        "sub_005",
        "sub_004",
        "sub_003",
        "sub_002",
    ][1:]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=x", "cursor=%%%", "cursor=bm90LWEtY3Vyc29y", "since=yesterday"],
)
async def test_invalid_cancellation_queries_answer_422(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore], query: str
) -> None:
    client, _, _ = api

    response = await client.get(f"/v1/accounts/{ACCOUNT}/cancellations?{query}", headers=auth())

    assert response.status_code == 422
    assert set(response.json()["error"]) == {"code", "message"}


async def test_monthly_churn_over_the_latest_completed_import(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, imports, records = api
    await imports.create(job("imp_1", ImportStatus.COMPLETED, T0))
    item = SubscriptionItem(unit_amount=5000, quantity=1, interval="month")
    paying = {"account_id": ACCOUNT, "processor": Processor.STRIPE, "currency": "USD", "items": [item]}
    await records.write(
        "imp_1",
        [
            SubscriptionRecord(
                object_id="sub_a",
                customer_id="cus_a",
                status="active",
                started_at=T0 - timedelta(days=90),
                **paying,
            ),
            SubscriptionRecord(
                object_id="sub_b",
                customer_id="cus_b",
                status="canceled",
                started_at=T0 - timedelta(days=90),
                canceled_at=T0 + timedelta(days=10),
                ended_at=T0 + timedelta(days=10),
                **paying,
            ),
        ],
        T0,
    )

    response = await client.get(
        f"/v1/accounts/{ACCOUNT}/metrics/churn", headers=auth(), params={"from": "2025-03", "to": "2025-04"}
    )

    assert response.status_code == 200
    march, april = response.json()["items"]
    assert march == {
        "month": "2025-03",
        "currency": "USD",
        "customers_at_start": 2,
        "churned_customers": 1,
        "customer_churn_rate": 0.5,
        "mrr_at_start": 10000,
        "churned_mrr": 5000,
        "gross_mrr_churn_rate": 0.5,
    }
    assert april["customers_at_start"] == 1
    assert april["churned_customers"] == 0


@pytest.mark.parametrize(
    "query", ["from=2025-13&to=2026-01", "from=2025-05&to=2025-01", "to=2025-01", "from=2000-01&to=2030-01"]
)
async def test_invalid_churn_ranges_answer_422(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore], query: str
) -> None:
    client, _, _ = api

    response = await client.get(f"/v1/accounts/{ACCOUNT}/metrics/churn?{query}", headers=auth())

    assert response.status_code == 422


async def test_an_account_id_holding_the_record_key_separator_is_422(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
) -> None:
    client, _, _ = api

    response = await client.get("/v1/accounts/acct:1/imports/latest", headers=auth("acct:1"))

    assert response.status_code == 422
    assert set(response.json()["error"]) == {"code", "message"}


async def test_the_import_the_connector_announced_reads_queued_before_the_importer_consumed_it(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
    announced: InMemoryAnnouncedImports,
) -> None:
    client, imports, _ = api
    missing = await client.get(f"/v1/accounts/{ACCOUNT}/imports/latest", headers=auth())
    assert missing.status_code == 404

    announced.announce(job("imp_new", ImportStatus.QUEUED, T0))

    for path in ("latest", "imp_new"):
        answer = await client.get(f"/v1/accounts/{ACCOUNT}/imports/{path}", headers=auth())
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "import_id": "imp_new",
            "processor": "stripe",
            "status": "queued",
            "started_at": None,
            "finished_at": None,
            "resources": {},
        }
    other = await client.get("/v1/accounts/acct_2/imports/imp_new", headers=auth("acct_2"))
    assert other.status_code == 404

    # The importer consumed the request: its own document answers from then on.
    await imports.create(job("imp_new", ImportStatus.RUNNING, T0 + timedelta(seconds=1)))
    running = await client.get(f"/v1/accounts/{ACCOUNT}/imports/latest", headers=auth())
    assert running.json()["status"] == "running"
    assert running.json()["resources"]["customers"] == {"imported": 10}


async def test_a_newer_announcement_outranks_an_older_finished_import(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore],
    announced: InMemoryAnnouncedImports,
) -> None:
    client, imports, _ = api
    await imports.create(job("imp_old", ImportStatus.COMPLETED, T0, finished_at=T0 + timedelta(minutes=1)))
    announced.announce(job("imp_old", ImportStatus.QUEUED, T0 - timedelta(seconds=1)))
    latest = await client.get(f"/v1/accounts/{ACCOUNT}/imports/latest", headers=auth())
    assert (latest.json()["import_id"], latest.json()["status"]) == ("imp_old", "completed")

    announced.announce(job("imp_again", ImportStatus.QUEUED, T0 + timedelta(hours=1)))
    latest = await client.get(f"/v1/accounts/{ACCOUNT}/imports/latest", headers=auth())
    assert (latest.json()["import_id"], latest.json()["status"]) == ("imp_again", "queued")


@pytest.mark.parametrize(
    "query",
    [
        "metrics/churn?from=0000-01&to=0000-01",
        "metrics/churn?from=9999-12&to=9999-12",
        "cancellations?until=0.5",
    ],
)
async def test_values_beyond_what_the_api_can_answer_are_422_not_500(
    api: tuple[httpx.AsyncClient, InMemoryImportRepository, InMemoryRecordStore], query: str
) -> None:
    client, _, _ = api

    response = await client.get(f"/v1/accounts/{ACCOUNT}/{query}", headers=auth())

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
