"""The HTTP kit every service's API is built with: envelope, tokens, body limit, spans, probes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from contracts.runtime.http import service_api
from contracts.runtime.http_auth import AuthorizedAccount
from contracts.runtime.http_errors import ApiError
from contracts.runtime.http_middleware import instrument_api
from contracts.runtime.http_plain import PlainRoute, read_body, render_json, send_json
from contracts.runtime.settings import CommonSettings
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, SecretStr
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

SECRET = "kit-test-secret-of-enough-length-for-hs256"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
MAX_BODY_BYTES = 4096


class Note(BaseModel):
    text: str


router = APIRouter()
received: list[str] = []


@router.post("/v1/accounts/{account_id}/notes")
async def add_note(account_id: AuthorizedAccount, note: Note) -> dict[str, str]:
    received.append(note.text)
    return {"account_id": account_id}


@router.get("/v1/oauth/callback")
async def callback() -> dict[str, str]:
    return {"status": "ok"}


def kit_app() -> FastAPI:
    settings = CommonSettings(http_max_body_bytes=MAX_BODY_BYTES)
    return service_api(settings, readiness={}, routers=[router], jwt_secret=SecretStr(SECRET), title="kit")


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    received.clear()
    transport = httpx.ASGITransport(app=kit_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        yield client


def bearer(account_id: str) -> dict[str, str]:
    token = jwt.encode({"sub": account_id, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_for_the_account_lets_the_body_through(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/accounts/acct-1/notes", json={"text": "hi"}, headers=bearer("acct-1"))

    assert response.json() == {"account_id": "acct-1"}
    assert received == ["hi"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "unauthorized"), (bearer("acct-2"), 403, "forbidden")],
)
async def test_refusals_are_in_the_envelope(
    api: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    response = await api.post("/v1/accounts/acct-1/notes", json={"text": "hi"}, headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert received == []


async def test_unknown_routes_methods_and_bad_bodies_are_in_the_envelope(api: httpx.AsyncClient) -> None:
    missing = await api.get("/nowhere")
    wrong_method = await api.delete("/v1/accounts/acct-1/notes")
    invalid = await api.post("/v1/accounts/acct-1/notes", json={"txt": 1}, headers=bearer("acct-1"))

    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert (invalid.status_code, invalid.json()["error"]["code"]) == (422, "invalid_request")


async def test_a_body_over_the_limit_is_refused_as_it_streams_in(api: httpx.AsyncClient) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            sent.append(1024)
            yield b" " * 1024

    response = await api.post("/v1/accounts/acct-1/notes", content=endless(), headers=bearer("acct-1"))

    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    assert sum(sent) <= 2 * MAX_BODY_BYTES
    assert received == []


async def test_a_declared_length_over_the_limit_is_refused_unread(api: httpx.AsyncClient) -> None:
    body = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'

    response = await api.post("/v1/accounts/acct-1/notes", content=body, headers=bearer("acct-1"))

    assert response.status_code == 413
    assert received == []


async def test_a_server_span_continues_the_callers_trace_without_the_query() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()
    app.include_router(router)
    instrument_api(app, tracer_provider=provider)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kit.test"
    ) as client:
        await client.get(
            "/v1/oauth/callback",
            params={"code": "ac_SECRETCODE", "state": "STATEVALUE"},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        await client.get("/livez")

    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    recorded = str(dict(span.attributes or {}))
    assert "SECRETCODE" not in recorded
    assert "STATEVALUE" not in recorded
    assert "/v1/oauth/callback" in recorded


traced = APIRouter()


@traced.post("/v1/trace")
async def current_trace(note: Note) -> dict[str, bool]:
    return {"in_a_trace": trace.get_current_span().get_span_context().is_valid}


@pytest.mark.parametrize(("sdk_disabled", "in_a_trace"), [(False, True), (True, False)])
async def test_with_tracing_off_a_request_runs_outside_any_trace_and_is_still_served(
    sdk_disabled: bool, in_a_trace: bool
) -> None:
    settings = CommonSettings(otel_sdk_disabled=sdk_disabled)
    app = service_api(settings, readiness={}, routers=[traced], title="kit")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kit.test"
    ) as client:
        response = await client.post(
            "/v1/trace",
            json={"text": "hello"},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        too_large = await client.post("/v1/trace", content=b"x" * (settings.http_max_body_bytes + 1))

    assert response.json() == {"in_a_trace": in_a_trace}
    assert too_large.status_code == 413


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    if body == b"refuse":
        raise ApiError(409, "refused", "Refused.")
    await send_json(send, 200, render_json({"length": len(body), "route": scope["route"].path}))


def plain_app() -> FastAPI:
    settings = CommonSettings(http_max_body_bytes=MAX_BODY_BYTES, otel_sdk_disabled=True)
    plain = [PlainRoute("/v1/plain/{name}", echo_length, methods=["POST"])]
    return service_api(settings, readiness={}, routers=[router], plain_routes=plain, title="kit")


async def test_a_plain_route_is_served_inside_the_limit_the_envelope_and_the_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = plain_app()
    instrument_api(app, tracer_provider=provider)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kit.test"
    ) as client:
        served = await client.post(
            "/v1/plain/a",
            content=b"abc",
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        refused = await client.post("/v1/plain/a", content=b"refuse")
        too_large = await client.post("/v1/plain/a", content=b"x" * (MAX_BODY_BYTES + 1))
        wrong_method = await client.get("/v1/plain/a")
        other_route = await client.get("/v1/oauth/callback")

    assert served.json() == {"length": 3, "route": "/v1/plain/{name}"}
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "refused")
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "payload_too_large")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert other_route.json() == {"status": "ok"}
    spans = exporter.get_finished_spans()
    assert format(spans[0].context.trace_id, "032x") == TRACE_ID
    assert spans[0].name == "POST /v1/plain/{name}"
    assert "/v1/plain/{name}" not in app.openapi()["paths"]


async def test_a_plain_route_never_reads_a_body_cut_short_by_the_client() -> None:
    sent: list[Message] = [
        {"type": "http.request", "body": b"part", "more_body": True},
        {"type": "http.disconnect"},
    ]
    messages = iter(sent)

    async def receive() -> Message:
        return next(messages)

    with pytest.raises(ClientDisconnect):
        await read_body(receive)
