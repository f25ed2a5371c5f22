"""The HTTP API over fakes: authentication, status codes, bodies, headers, log lines."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from connector.domain.refusals import ConnectionRefused, RefusalCode, processor_unavailable, rate_limited
from connector.service.track_imports import track_import
from connector_fakes import (
    ALL_TEST_SECRETS,
    CHARGEBEE_KEY,
    OTHER_STRIPE_ACCOUNT,
    STRIPE_KEY,
    STRIPE_RESTRICTED_KEY,
    World,
)
from connector_unit_kit import JWT_SECRET, auth, token_for
from contracts.events import ImportCompleted, Processor, ProcessorDisconnected

ACCOUNT = "acc_http"
STRIPE_BODY = {
    "api_key": STRIPE_KEY,
    "contact_email": "owner@acme.example",
    "return_url": "https://app.example/onboarding?step=3",
}
CHARGEBEE_BODY = {"site": "acme-test", "api_key": CHARGEBEE_KEY, "contact_email": "owner@acme.example"}
ACCOUNT_ROUTES = [
    ("POST", "/connections/stripe", STRIPE_BODY),
    ("POST", "/connections/chargebee", CHARGEBEE_BODY),
    ("POST", "/connections/skip", {}),
    ("GET", "/connection", None),
    ("DELETE", "/connection", None),
    ("POST", "/imports", None),
]


def url(path: str, account_id: str = ACCOUNT) -> str:
    return f"/v1/accounts/{account_id}{path}"


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return str(body["error"]["code"])


@pytest.mark.parametrize(("method", "path", "body"), ACCOUNT_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer not-a-jwt",
        "Basic " + "dXNlcjpwYXNz",
        f"Bearer {token_for(ACCOUNT, secret='another-secret-entirely-0123456789')}",
        f"Bearer {token_for(ACCOUNT, expires_in_s=-3600)}",
        f"Bearer {jwt.encode({'sub': ACCOUNT}, JWT_SECRET, algorithm='HS256')}",
        f"Bearer {jwt.encode({'exp': int(time.time()) + 60}, JWT_SECRET, algorithm='HS256')}",
        f"Bearer {jwt.encode({'sub': ACCOUNT, 'exp': int(time.time()) + 60}, JWT_SECRET, algorithm='HS512')}",
    ],
)
async def test_every_account_route_needs_a_valid_token(
    api: httpx.AsyncClient, world: World, method: str, path: str, body: object, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = await api.request(method, url(path), json=body, headers=headers)

    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert world.connections.documents == {}
    assert world.stripe.calls == []


@pytest.mark.parametrize(("method", "path", "body"), ACCOUNT_ROUTES)
async def test_a_token_of_another_account_is_forbidden(
    api: httpx.AsyncClient, world: World, method: str, path: str, body: object
) -> None:
    response = await api.request(method, url(path), json=body, headers=auth("someone_else"))

    assert (response.status_code, error_code(response)) == (403, "forbidden")
    assert world.connections.documents == {}


async def test_stripe_connect_answers_with_the_authorize_url(api: httpx.AsyncClient, world: World) -> None:
    response = await api.post(url("/connections/stripe"), json=STRIPE_BODY, headers=auth(ACCOUNT))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "awaiting_authorization"
    assert body["mode"] == "test"
    assert body["connection_id"] in world.connections.documents
    authorize = urlsplit(body["authorize_url"])
    query = parse_qs(authorize.query)
    assert authorize.path == "/oauth/authorize"
    assert query["redirect_uri"] == ["https://connector.test/v1/oauth/stripe/callback"]
    assert query["client_id"] == ["ca_UnitPlatform"]
    assert query["scope"] == ["read_write"]


@pytest.mark.parametrize(
    ("api_key", "code"),
    [
        ("pk_live_51Publishable00000000", "publishable_key"),
        ("sk_nope_1", "invalid_key_format"),
        ("whatever", "invalid_key_format"),
    ],
)
async def test_stripe_key_format_refusals(
    api: httpx.AsyncClient, world: World, api_key: str, code: str
) -> None:
    response = await api.post(
        url("/connections/stripe"), json={**STRIPE_BODY, "api_key": api_key}, headers=auth(ACCOUNT)
    )

    assert (response.status_code, error_code(response)) == (422, code)
    assert api_key not in response.text
    assert world.stripe.calls == []


@pytest.mark.parametrize(
    ("refusal", "status", "retry_after"),
    [
        (ConnectionRefused(RefusalCode.KEY_REJECTED, "m"), 422, None),
        (rate_limited("Stripe", 9), 429, "9"),
        (processor_unavailable("Stripe", 30), 503, "30"),
        (processor_unavailable("Stripe"), 503, None),
    ],
)
async def test_stripe_validation_failures_map_to_statuses(
    api: httpx.AsyncClient, world: World, refusal: ConnectionRefused, status: int, retry_after: str | None
) -> None:
    world.stripe.refusal = refusal

    response = await api.post(url("/connections/stripe"), json=STRIPE_BODY, headers=auth(ACCOUNT))

    assert (response.status_code, error_code(response)) == (status, refusal.code.value)
    assert response.headers.get("retry-after") == retry_after
    assert world.connections.documents == {}


async def test_insufficient_permissions_names_what_is_missing(api: httpx.AsyncClient, world: World) -> None:
    world.stripe.unreadable = ["subscriptions"]

    response = await api.post(
        url("/connections/stripe"),
        json={**STRIPE_BODY, "api_key": STRIPE_RESTRICTED_KEY},
        headers=auth(ACCOUNT),
    )

    assert (response.status_code, error_code(response)) == (422, "insufficient_permissions")
    assert response.json()["error"]["missing_permissions"] == ["subscriptions"]


async def connect_stripe_pending(api: httpx.AsyncClient, body: dict[str, str] | None = None) -> str:
    response = await api.post(url("/connections/stripe"), json=body or STRIPE_BODY, headers=auth(ACCOUNT))
    assert response.status_code == 200
    state: str = parse_qs(urlsplit(response.json()["authorize_url"]).query)["state"][0]
    return state


async def test_the_callback_redirects_to_the_return_url(api: httpx.AsyncClient, world: World) -> None:
    state = await connect_stripe_pending(api)
    world.stripe.grant("ac_ok")

    response = await api.get("/v1/oauth/stripe/callback", params={"code": "ac_ok", "state": state})

    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example/onboarding?step=3&status=connected"
    assert response.headers["referrer-policy"] == "no-referrer"
    summary = (await api.get(url("/connection"), headers=auth(ACCOUNT))).json()
    assert summary["status"] == "connected"
    assert summary["processor"] == "stripe"
    assert summary["latest_import"]["status"] == "queued"

    replay = await api.get("/v1/oauth/stripe/callback", params={"code": "ac_ok", "state": state})
    assert (replay.status_code, error_code(replay)) == (400, "invalid_state")


async def test_a_denied_or_mismatched_authorization_says_so_on_the_return_url(
    api: httpx.AsyncClient, world: World
) -> None:
    state = await connect_stripe_pending(api)
    denied = await api.get("/v1/oauth/stripe/callback", params={"error": "access_denied", "state": state})
    assert denied.headers["location"].endswith("step=3&status=denied")

    state = await connect_stripe_pending(api)
    world.stripe.grant("ac_other", stripe_user_id=OTHER_STRIPE_ACCOUNT)
    mismatch = await api.get("/v1/oauth/stripe/callback", params={"code": "ac_other", "state": state})
    assert mismatch.status_code == 303
    assert mismatch.headers["location"].endswith("step=3&status=error&code=account_mismatch")


async def test_without_a_return_url_the_browser_gets_a_page(api: httpx.AsyncClient, world: World) -> None:
    state = await connect_stripe_pending(api, {k: v for k, v in STRIPE_BODY.items() if k != "return_url"})
    world.stripe.grant("ac_ok")

    response = await api.get("/v1/oauth/stripe/callback", params={"code": "ac_ok", "state": state})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Stripe is connected" in response.text


async def test_a_browser_with_a_bad_state_gets_a_page(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/v1/oauth/stripe/callback",
        params={"code": "x", "state": "<script>"},
        headers={"Accept": "text/html"},
    )

    assert response.status_code == 400
    assert "invalid_state" in response.text
    assert "<script>" not in response.text


async def test_chargebee_connect_creates_the_connection_and_returns_the_import(
    api: httpx.AsyncClient, world: World
) -> None:
    response = await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT))

    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["mode"]) == ("connected", "test")
    assert body["import_id"].startswith("imp_")
    assert body["connection_id"] in world.connections.documents

    again = await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT))
    assert (again.status_code, error_code(again)) == (409, "already_connected")


@pytest.mark.parametrize("site", ["evil.example.com", "acme.chargebee.com#", "ACME", "a" * 64, "127.0.0.1:9"])
async def test_chargebee_site_must_be_a_site_name(api: httpx.AsyncClient, world: World, site: str) -> None:
    response = await api.post(
        url("/connections/chargebee"), json={**CHARGEBEE_BODY, "site": site}, headers=auth(ACCOUNT)
    )

    assert (response.status_code, error_code(response)) == (422, "invalid_site")
    assert world.chargebee.calls == []


@pytest.mark.parametrize(
    "code", [RefusalCode.KEY_REJECTED, RefusalCode.SITE_NOT_FOUND, RefusalCode.SITE_BLOCKED]
)
async def test_chargebee_refusals(api: httpx.AsyncClient, world: World, code: RefusalCode) -> None:
    world.chargebee.refusal = ConnectionRefused(code, "m")

    response = await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT))

    assert (response.status_code, error_code(response)) == (422, code.value)


async def test_skip_read_disconnect_and_resync(api: httpx.AsyncClient, world: World) -> None:
    assert (await api.get(url("/connection"), headers=auth(ACCOUNT))).status_code == 404

    skipped = await api.post(
        url("/connections/skip"), json={"contact_email": "o@acme.example"}, headers=auth(ACCOUNT)
    )
    assert skipped.status_code == 200
    assert skipped.json() == {
        "status": "skipped",
        "disabled_features": [
            "past_cancellations",
            "recovered_revenue",
            "coupon_offers",
            "trial_extension_offers",
        ],
    }
    view = (await api.get(url("/connection"), headers=auth(ACCOUNT))).json()
    assert view["status"] == "skipped"
    assert view["processor"] is None
    assert view["latest_import"] is None
    assert view["features"] == {
        "past_cancellations": False,
        "churn_metrics": True,
        "recovered_revenue": False,
        "coupon_offers": False,
        "trial_extension_offers": False,
    }
    not_connected = await api.post(url("/imports"), headers=auth(ACCOUNT))
    assert (not_connected.status_code, error_code(not_connected)) == (409, "not_connected")

    connected = await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT))
    assert connected.status_code == 201
    busy = await api.post(url("/imports"), headers=auth(ACCOUNT))
    assert (busy.status_code, error_code(busy)) == (409, "import_in_progress")
    first = ImportCompleted(
        account_id=ACCOUNT,
        import_id=connected.json()["import_id"],
        processor=Processor.CHARGEBEE,
        resources={},
        past_cancellations=0,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        contact_email="o@acme.example",
    )
    assert await track_import(world.deps, first) == "completed"
    resync = await api.post(url("/imports"), headers=auth(ACCOUNT))
    assert resync.status_code == 202
    assert resync.json()["import_id"] != connected.json()["import_id"]
    view = (await api.get(url("/connection"), headers=auth(ACCOUNT))).json()
    assert view["status"] == "connected"
    assert all(view["features"].values())
    assert view["latest_import"]["import_id"] == resync.json()["import_id"]
    assert view["connected_at"] is not None
    assert view["mode"] == "test"

    deleted = await api.delete(url("/connection"), headers=auth(ACCOUNT))
    assert deleted.status_code == 204
    assert deleted.content == b""
    view = (await api.get(url("/connection"), headers=auth(ACCOUNT))).json()
    assert view["status"] == "disconnected"
    stored = world.connections.documents[connected.json()["connection_id"]].connection
    assert stored.credentials_ciphertext is None


async def test_delete_with_erase_asks_for_the_erase_and_a_bad_flag_is_422(
    api: httpx.AsyncClient, world: World
) -> None:
    await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT))

    bad = await api.delete(url("/connection?erase=perhaps"), headers=auth(ACCOUNT))
    assert (bad.status_code, error_code(bad)) == (422, "invalid_request")
    assert (await api.get(url("/connection"), headers=auth(ACCOUNT))).json()["status"] == "connected"

    deleted = await api.delete(url("/connection?erase=true"), headers=auth(ACCOUNT))
    assert deleted.status_code == 204
    [disconnected] = [
        event for _, event in world.publisher.published if event.type == "ProcessorDisconnected"
    ]
    assert isinstance(disconnected, ProcessorDisconnected)
    assert disconnected.erase


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"api_key": STRIPE_KEY}, "application/json"),
        ({"api_key": STRIPE_KEY, "contact_email": "not-an-email"}, "application/json"),
        ({"api_key": STRIPE_KEY + "x" * 600, "contact_email": "o@a.example"}, "application/json"),
        ({"api_key": 12, "contact_email": "o@a.example"}, "application/json"),
        ("{not json " + STRIPE_KEY, "application/json"),
    ],
)
async def test_invalid_requests_are_422_in_the_error_shape_and_never_echo_the_key(
    api: httpx.AsyncClient, world: World, body: object, content_type: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)

    response = await api.post(
        url("/connections/stripe"), content=content, headers={**auth(ACCOUNT), "Content-Type": content_type}
    )

    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert STRIPE_KEY not in response.text
    assert world.connections.documents == {}


@pytest.mark.parametrize(
    "return_url",
    [
        "javascript:alert(1)",
        "https://evil.example/phish",
        "http://app.example/done",
        "https://app.example@evil.example/",
        "https://evil.example\\@app.example/",
        "//evil.example/",
        "ftp://app.example/",
    ],
)
async def test_a_return_url_off_the_allowed_hosts_is_refused_before_anything_happens(
    api: httpx.AsyncClient, world: World, return_url: str
) -> None:
    body = {**STRIPE_BODY, "return_url": return_url}

    response = await api.post(url("/connections/stripe"), json=body, headers=auth(ACCOUNT))

    assert (response.status_code, error_code(response)) == (422, "invalid_return_url")
    assert world.connections.documents == {}
    assert world.stripe.calls == []
    assert world.publisher.published == []


async def test_an_invalid_account_id_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get(url("/connection", account_id="bad%20id"), headers=auth("bad id"))
    assert (response.status_code, error_code(response)) == (422, "invalid_request")


async def test_unknown_routes_answer_in_the_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/nothing-here")
    assert (response.status_code, error_code(response)) == (404, "not_found")


async def test_one_log_line_per_request_and_no_secret_anywhere(
    api: httpx.AsyncClient, world: World, captured_logs: io.StringIO
) -> None:
    responses = [
        await api.post(url("/connections/stripe"), json=STRIPE_BODY, headers=auth(ACCOUNT)),
        await api.post(
            url("/connections/stripe"),
            json={**STRIPE_BODY, "api_key": STRIPE_KEY + "!"},
            headers=auth(ACCOUNT),
        ),
        await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth("acc_other")),
        await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT)),
        await api.post(url("/connections/chargebee"), json=CHARGEBEE_BODY, headers=auth(ACCOUNT)),
    ]
    world.stripe.refusal = ConnectionRefused(RefusalCode.KEY_REJECTED, "m")
    responses.append(
        await api.post(url("/connections/stripe", "acc_3"), json=STRIPE_BODY, headers=auth("acc_3"))
    )

    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "http.request"]
    assert len(requests) == len(responses)
    assert [(r["status"], r["outcome"]) for r in requests] == [
        (200, "ok"),
        (422, "invalid_key_format"),
        (403, "forbidden"),
        (201, "ok"),
        (409, "already_connected"),
        (422, "key_rejected"),
    ]
    assert all(
        r["account_id"] and "duration_ms" in r and r["route"].startswith("/v1/accounts/") for r in requests
    )
    everything = captured_logs.getvalue() + "".join(r.text for r in responses)
    everything += "".join(event.model_dump_json() for _, event in world.publisher.published)
    for secret in ALL_TEST_SECRETS:
        assert secret not in everything


async def test_an_account_id_holding_the_record_key_separator_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get(url("/connection", account_id="acct:1"), headers=auth("acct:1"))
    assert (response.status_code, error_code(response)) == (422, "invalid_request")


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_huge_body_is_refused_with_413_before_it_is_read(
    api: httpx.AsyncClient, world: World, declared: bool
) -> None:
    chunk, chunks = b"x" * 65536, 640  # 40 MiB, unauthenticated
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(chunks):
            sent.append(len(chunk))
            yield chunk

    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(len(chunk) * chunks)
    response = await api.post(url("/connections/stripe"), content=body(), headers=headers)

    assert (response.status_code, error_code(response)) == (413, "payload_too_large")
    assert sum(sent) <= 2 * 1024 * 1024
    assert world.connections.documents == {}
