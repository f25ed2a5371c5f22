"""Fixtures of the connector's unit tests: the use cases and the HTTP API over in-memory fakes."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from connector.bootstrap import build
from connector.domain.stripe_signature import StripeWebhookSecrets
from connector.domain.webhooks import WebhookIntake
from connector.settings import ConnectorSettings
from connector_fakes import (
    STRIPE_ACCOUNT,
    RecordingSyncQueue,
    StripeAccountsOf,
    World,
    build_world,
    new_fernet_key,
)
from contracts.runtime.logging import configure_logging
from fastapi import FastAPI
from pydantic import SecretStr

JWT_SECRET = "unit-test-jwt-secret-" + "0123456789abcdef" * 4


def token_for(account_id: str, *, secret: str = JWT_SECRET, expires_in_s: int = 3600) -> str:
    payload = {"sub": account_id, "exp": int(time.time()) + expires_in_s}
    return jwt.encode(payload, secret, algorithm="HS256")


def auth(account_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(account_id)}"}


def unit_settings() -> ConnectorSettings:
    return ConnectorSettings(
        api_jwt_secret=SecretStr(JWT_SECRET),
        credentials_keys=SecretStr(new_fernet_key()),
        public_base_url="https://connector.test",
        stripe_client_id="ca_UnitPlatform",
    )


def app_over(world: World, settings: ConnectorSettings | None = None) -> FastAPI:
    """The connector's app with every dependency a fake of ``world`` (its lifespan is never run)."""
    overrides = {field.name: getattr(world.deps, field.name) for field in dataclasses.fields(world.deps)}
    return build(settings or unit_settings(), **overrides)


def webhook_intake(
    world: World, queue: RecordingSyncQueue, secrets: str, *, now_s: Callable[[], float] = time.time
) -> WebhookIntake:
    """The webhook intake of ``world``'s connector: Stripe events verified with ``secrets`` (the
    ``STRIPE_WEBHOOK_SECRET`` setting's form), every accepted event queued on ``queue``."""
    return WebhookIntake(
        stripe_secrets=StripeWebhookSecrets.from_setting(secrets),
        queue=queue,
        stripe_accounts=StripeAccountsOf(world),
        public_base_url="https://connector.test",
        now_s=now_s,
    )


def stripe_event_body(created: int, **overrides: Any) -> bytes:
    """A ``customer.updated`` event of ``STRIPE_ACCOUNT`` as a webhook carries it, plus ``overrides``."""
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "customer.updated",
        "created": created,
        "livemode": False,
        "account": STRIPE_ACCOUNT,
        "data": {"object": {"id": "cus_1", "object": "customer", "email": "a@b.example"}},
    }
    event.update(overrides)
    return json.dumps(event).encode()


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_over(world))
    async with httpx.AsyncClient(transport=transport, base_url="https://connector.test") as client:
        yield client


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line as the service writes it (JSON, after redaction)."""
    configure_logging("connector", level="DEBUG")
    root = logging.getLogger()
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
