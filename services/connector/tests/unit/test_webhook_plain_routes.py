"""The webhook routes are served outside FastAPI's request handling (``http_webhooks.PLAIN_ROUTES``):
what every route of the API has must still hold for them: the body limit, the error envelope with
its headers, one access log line, the request-duration histogram, and answers as FastAPI gave them."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from connector.domain.stripe_signature import sign
from connector_fakes import RecordingSyncQueue, World, build_world
from connector_unit_kit import app_over, stripe_event_body, unit_settings, webhook_intake
from contracts.runtime.metrics import REGISTRY

SECRET = "whsec_plain_route_0123456789"
NOW = 1_790_000_000
MAX_BODY_BYTES = 4096
STRIPE = "/v1/webhooks/stripe"
CHARGEBEE = "/v1/webhooks/chargebee/{connection_id}"


@dataclasses.dataclass
class Intake:
    world: World
    queue: RecordingSyncQueue
    api: httpx.AsyncClient


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    world, queue = build_world(), RecordingSyncQueue()
    world.deps = dataclasses.replace(
        world.deps,
        webhooks=webhook_intake(world, queue, SECRET, now_s=lambda: float(NOW)),
    )
    settings = unit_settings().model_copy(update={"http_max_body_bytes": MAX_BODY_BYTES})
    transport = httpx.ASGITransport(app=app_over(world, settings))
    async with httpx.AsyncClient(transport=transport, base_url="https://connector.test") as client:
        yield Intake(world, queue, client)


def signed(body: bytes) -> dict[str, str]:
    return {"Stripe-Signature": sign(body, SECRET, NOW)}


def requests_seen(route: str, status: int) -> float:
    labels = {"method": "POST", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("connector_http_request_duration_seconds_count", labels) or 0.0


async def test_a_verified_webhook_is_answered_as_a_json_response_would_be(intake: Intake) -> None:
    body = stripe_event_body(NOW - 1)

    response = await intake.api.post(STRIPE, content=body, headers=signed(body))

    assert response.status_code == 200
    assert response.content == b'{"received":true}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert len(intake.queue.events) == 1


async def test_a_body_over_the_limit_is_refused_unread_or_as_it_streams_in(intake: Intake) -> None:
    body = stripe_event_body(NOW - 1, padding="x" * MAX_BODY_BYTES)
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            sent.append(1024)
            yield b" " * 1024

    declared = await intake.api.post(STRIPE, content=body, headers=signed(body))
    streamed = await intake.api.post(
        "/v1/webhooks/chargebee/conn_1", content=endless(), headers={"Authorization": "Basic dTpw"}
    )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
    assert sum(sent) <= 2 * MAX_BODY_BYTES
    assert intake.queue.events == []


async def test_refusals_are_in_the_error_envelope_with_their_headers(intake: Intake) -> None:
    wrong_method = await intake.api.get(STRIPE)
    too_long_id = await intake.api.post("/v1/webhooks/chargebee/" + "c" * 129, content=b"{}")
    no_credentials = await intake.api.post("/v1/webhooks/chargebee/conn_1", content=b"{}")
    not_json = await intake.api.post(STRIPE, content=b"[1", headers=signed(b"[1"))

    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert wrong_method.json() == {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}
    assert (too_long_id.status_code, too_long_id.json()["error"]) == (
        422,
        {
            "code": "invalid_request",
            "message": "path.connection_id: String should have at most 128 characters",
        },
    )
    assert no_credentials.status_code == 401
    assert no_credentials.headers["www-authenticate"] == 'Basic realm="webhooks"'
    assert no_credentials.json()["error"]["code"] == "unauthorized"
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_request")
    assert intake.queue.events == []


async def test_an_unexpected_failure_answers_500_in_the_envelope(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def store_down(_connection_id: str) -> None:
        raise ConnectionError("the store is unreachable")

    monkeypatch.setattr(intake.world.connections, "get", store_down)
    transport = httpx.ASGITransport(app=app_over(intake.world), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://connector.test") as client:
        response = await client.post(
            "/v1/webhooks/chargebee/conn_1", content=b"{}", headers={"Authorization": "Basic dTpw"}
        )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "unreachable" not in response.text


async def test_each_webhook_has_its_access_line_and_its_duration_by_route_template(
    intake: Intake, captured_logs: io.StringIO
) -> None:
    body = stripe_event_body(NOW - 1)
    before = (requests_seen(STRIPE, 200), requests_seen(STRIPE, 400), requests_seen(CHARGEBEE, 401))

    await intake.api.post(STRIPE, content=body, headers=signed(body))
    await intake.api.post(STRIPE, content=body, headers={"Stripe-Signature": f"t={NOW},v1={'0' * 64}"})
    await intake.api.post("/v1/webhooks/chargebee/conn_1", content=b"{}")

    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "http.request"]
    assert [(r["method"], r["route"], r["status"], r["outcome"]) for r in requests] == [
        ("POST", STRIPE, 200, "ok"),
        ("POST", STRIPE, 400, "invalid_signature"),
        ("POST", CHARGEBEE, 401, "unauthorized"),
    ]
    assert all("duration_ms" in r for r in requests)
    after = (requests_seen(STRIPE, 200), requests_seen(STRIPE, 400), requests_seen(CHARGEBEE, 401))
    assert [seen - was for seen, was in zip(after, before, strict=True)] == [1, 1, 1]


async def test_the_documented_webhook_routes_are_the_ones_served(intake: Intake) -> None:
    schema = (await intake.api.get("/openapi.json")).json()

    assert schema["paths"][STRIPE]["post"]["parameters"][0]["name"] == "Stripe-Signature"
    assert {p["name"] for p in schema["paths"][CHARGEBEE]["post"]["parameters"]} == {
        "connection_id",
        "authorization",
    }
