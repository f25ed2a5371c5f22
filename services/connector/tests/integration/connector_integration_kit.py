"""Fixtures of the connector's integration tests: the real broker, store and fake processors over HTTP.

The connector runs in-process (its FastAPI app with the production runtime: MongoDB, Kafka, httpx)
once per test module; tests keep apart by using their own account ids. Everything the service
logs, answers and publishes during a module is captured, so each module can end by proving that no
test secret appears anywhere.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from connector.adapters.sealed_box import seal
from connector.bootstrap import build
from connector.settings import ConnectorSettings
from contracts.runtime.logging import configure_logging
from contracts.topics import CONNECTIONS, IMPORTS, ONBOARDING_REQUESTS
from devstack.events import CollectedEvent, TopicCollector
from fastapi import FastAPI
from nacl.public import PrivateKey
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from sandbox import (
    SAMPLE_CHARGEBEE_BLOCKED_KEY,
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_RESTRICTED_KEY,
    SAMPLE_STRIPE_CLIENT_ID,
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_LIMITED_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_KEY,
    SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    SAMPLE_STRIPE_PUBLISHABLE_KEY,
    SAMPLE_STRIPE_RESTRICTED_KEY,
    RunningSandbox,
    SandboxAdmin,
    start_sandbox,
)

PUBLIC_BASE_URL = "http://connector.test"
#: Every secret a test hands the connector: none may ever come out of it.
TEST_SECRETS = (
    SAMPLE_STRIPE_KEY,
    SAMPLE_STRIPE_RESTRICTED_KEY,
    SAMPLE_STRIPE_LIMITED_KEY,
    SAMPLE_STRIPE_OTHER_ACCOUNT_KEY,
    SAMPLE_STRIPE_PUBLISHABLE_KEY,
    SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_PC1_KEY,
    SAMPLE_CHARGEBEE_RESTRICTED_KEY,
    SAMPLE_CHARGEBEE_BLOCKED_KEY,
)


@dataclass(frozen=True, repr=False)
class Secrets:
    jwt_secret: str
    credentials_key: str
    private_key: PrivateKey

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            jwt_secret=base64.urlsafe_b64encode(uuid.uuid4().bytes * 3).decode(),
            credentials_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            private_key=PrivateKey.generate(),
        )

    @property
    def private_key_b64(self) -> str:
        return base64.b64encode(bytes(self.private_key)).decode()

    def token(self, account_id: str) -> str:
        return jwt.encode(
            {"sub": account_id, "exp": int(time.time()) + 3600}, self.jwt_secret, algorithm="HS256"
        )

    def auth(self, account_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(account_id)}"}

    def seal(self, secret: str) -> str:
        return seal(base64.b64encode(bytes(self.private_key.public_key)).decode(), secret)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.jwt_secret, self.credentials_key, self.private_key_b64)


@dataclass
class Processors:
    running: RunningSandbox
    stripe: SandboxAdmin
    chargebee: SandboxAdmin


@dataclass
class Transcript:
    """What came out of the connector during a module: log lines, HTTP answers, published events."""

    logs: io.StringIO = field(default_factory=io.StringIO)
    responses: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response) -> httpx.Response:
        self.responses.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response


@dataclass
class Connector:
    """The in-process connector of one module, and ways to talk to it as its users do."""

    app: FastAPI
    http: httpx.AsyncClient
    settings: ConnectorSettings
    secrets: Secrets
    db_name: str
    mongo: AsyncMongoClient[dict[str, Any]]
    producer: AIOKafkaProducer
    answers: TopicCollector
    transcript: Transcript

    @property
    def db(self) -> Any:
        return self.mongo[self.db_name]

    async def call(
        self, method: str, path: str, account_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if account_id is not None:
            headers.update(self.secrets.auth(account_id))
        return self.transcript.record(await self.http.request(method, path, headers=headers, **kwargs))

    async def follow_callback(self, location: str) -> httpx.Response:
        """The browser coming back from Stripe to our redirect_uri."""
        assert location.startswith(PUBLIC_BASE_URL), location
        return self.transcript.record(await self.http.get(location.removeprefix(PUBLIC_BASE_URL)))

    async def submit(self, request: dict[str, Any]) -> str:
        """Publish an onboarding request as the gateway does; its event id."""
        request = {"event_id": str(uuid.uuid4()), "occurred_at": "2025-06-01T12:00:00Z", **request}
        await self.producer.send_and_wait(
            ONBOARDING_REQUESTS, json.dumps(request).encode(), key=str(request["account_id"]).encode()
        )
        return str(request["event_id"])

    async def publish_import_event(self, event: dict[str, Any]) -> None:
        await self.producer.send_and_wait(
            IMPORTS, json.dumps(event).encode(), key=str(event["account_id"]).encode()
        )

    async def answer(
        self, account_id: str, event_type: str | None = None, *, count: int = 1
    ) -> list[dict[str, Any]]:
        """The events published on connections.v1 for this account (waiting for ``count`` of them)."""

        def mine(event: CollectedEvent) -> bool:
            return event.key == account_id and (event_type is None or event.type == event_type)

        return [e.value for e in await self.answers.wait_for(mine, count=count)]

    def published_for(self, account_id: str) -> list[dict[str, Any]]:
        return [e.value for e in self.answers.events if e.key == account_id]


@pytest.fixture
def account() -> str:
    return f"acc_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def processors() -> Iterator[Processors]:
    """The sandbox's fake Stripe and Chargebee serving real HTTP from background threads.

    The session's modules share one fake, and together they send the sample site more than
    Chargebee's 150 requests a minute: the fake Chargebee is unlimited here (the connector's answer
    to a 429 is tested with injected ones).
    """
    with start_sandbox(chargebee_rate_limit_per_min=None) as running:
        yield Processors(running, SandboxAdmin(running.stripe_url), SandboxAdmin(running.chargebee_url))


@pytest.fixture(autouse=True)
def _no_faults_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "processors" in request.fixturenames:
        fakes: Processors = request.getfixturevalue("processors")
        fakes.stripe.clear_faults()
        fakes.chargebee.clear_faults()


def connector_settings(
    *, kafka: str, mongodb_url: str, db_name: str, processors: Processors, secrets: Secrets, **overrides: Any
) -> ConnectorSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka,
        "mongodb_url": mongodb_url,
        "mongodb_database": db_name,
        "api_jwt_secret": SecretStr(secrets.jwt_secret),
        "credentials_keys": SecretStr(secrets.credentials_key),
        "connector_private_key": SecretStr(secrets.private_key_b64),
        "public_base_url": PUBLIC_BASE_URL,
        "return_url_hosts": "app.example,gateway.example",
        "stripe_api_base": processors.running.stripe_url,
        "stripe_connect_base": processors.running.stripe_url,
        "stripe_client_id": SAMPLE_STRIPE_CLIENT_ID,
        "stripe_platform_secret_key": SecretStr(SAMPLE_STRIPE_PLATFORM_SECRET_KEY),
        "chargebee_api_url_template": processors.running.chargebee_url_template,
        "processor_timeout_s": 3.0,
        "outbox_relay_interval_s": 1.0,
        "otel_sdk_disabled": True,
        **overrides,
    }
    return ConnectorSettings(**values)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def connector(
    kafka_bootstrap: str, mongodb_url: str, processors: Processors
) -> AsyncIterator[Connector]:
    secrets = Secrets.generate()
    db_name = f"t_connector_{uuid.uuid4().hex[:10]}"
    settings = connector_settings(
        kafka=kafka_bootstrap,
        mongodb_url=mongodb_url,
        db_name=db_name,
        processors=processors,
        secrets=secrets,
    )
    transcript = Transcript()
    configure_logging("connector", level="DEBUG")
    root = logging.getLogger()
    capture = logging.StreamHandler(transcript.logs)
    capture.setFormatter(root.handlers[0].formatter)
    root.addHandler(capture)
    answers = await TopicCollector(kafka_bootstrap, CONNECTIONS).start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    app = build(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE_URL) as http:
                yield Connector(app, http, settings, secrets, db_name, mongo, producer, answers, transcript)
    finally:
        await producer.stop()
        await answers.stop()
        await mongo.drop_database(db_name)
        await mongo.close()
        root.removeHandler(capture)


async def assert_no_secret_in(connector: Connector) -> None:
    """The module's whole transcript, events and stored documents included, holds none of the secrets."""
    stored = [
        json.dumps(document, default=str)
        for name in await connector.db.list_collection_names()
        async for document in connector.db[name].find()
    ]
    assert stored, "nothing was stored: the scan would prove nothing"
    corpus = "\n".join(
        [
            connector.transcript.logs.getvalue(),
            *connector.transcript.responses,
            *stored,
            *(json.dumps(event.value) for event in connector.answers.events),
            *(
                json.dumps({k: v.decode(errors="replace") for k, v in e.headers.items()})
                for e in connector.answers.events
            ),
        ]
    )
    assert connector.transcript.logs.getvalue(), "no log line was captured: the scan would prove nothing"
    assert connector.transcript.responses
    assert connector.answers.events
    for secret in (*TEST_SECRETS, *connector.secrets.all):
        assert secret not in corpus
