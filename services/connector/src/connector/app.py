"""The composition root: real adapters wired to the use cases, behind FastAPI and the Kafka broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import httpx
from contracts import topics
from contracts.events import CONNECTION_EVENTS, OFFER_EVENTS
from contracts.runtime.http import ReadinessCheck, operational_router
from contracts.runtime.kafka import build_broker, declare_publications, stop_broker
from contracts.runtime.telemetry import configure_tracing
from contracts.sync import SYNC_EVENTS_TOPIC, ProcessorEventReceived
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from connector.adapters.chargebee_api import ChargebeeHttpGateway
from connector.adapters.kafka_events import KafkaEventPublisher
from connector.adapters.kafka_sync_events import KafkaSyncEventQueue
from connector.adapters.mongo_connections import MongoConnectionStore
from connector.adapters.mongo_import_counts import MongoImportCounts
from connector.adapters.mongo_oauth_states import MongoOAuthStateStore
from connector.adapters.mongo_store import connect, ensure_indexes
from connector.adapters.mongo_webhook_reads import (
    MongoStripeAccounts,
    MongoSyncStates,
    ensure_webhook_indexes,
)
from connector.adapters.processor_http import timeout
from connector.adapters.sealed_box import SealedBoxSecrets
from connector.adapters.stripe_api import StripeHttpGateway
from connector.domain.oauth import StripeConnectPlatform
from connector.domain.stripe_signature import StripeWebhookSecrets
from connector.domain.webhooks import WebhookIntake
from connector.entrypoints import http_connections, http_oauth, http_webhooks
from connector.entrypoints.http_access_log import AccessLog
from connector.entrypoints.http_dependencies import AccountTokens
from connector.entrypoints.http_errors import install_error_handlers
from connector.entrypoints.http_tracing import TracedRequests
from connector.entrypoints.imports_consumer import subscribe_import_progress
from connector.entrypoints.onboarding_consumer import subscribe_onboarding_requests
from connector.entrypoints.onboarding_page import install_onboarding_page
from connector.service.context import Services
from connector.service.outbox import run_relay
from connector.settings import ConnectorSettings

SERVICE: Final = "connector"
KAFKA_PING_TIMEOUT_S: Final = 2.0


@dataclass
class Runtime:
    services: Services
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)


RuntimeFactory = Callable[[ConnectorSettings], AbstractAsyncContextManager[Runtime]]


def stripe_platform(settings: ConnectorSettings) -> StripeConnectPlatform:
    # Without the platform key no code can be exchanged: Stripe Connect counts as not configured, so
    # people are told before they go to Stripe rather than after.
    configured = settings.stripe_client_id and settings.stripe_platform_secret_key is not None
    return StripeConnectPlatform(
        client_id=settings.stripe_client_id if configured else None,
        connect_base=settings.stripe_connect_base,
        redirect_uri=settings.oauth_redirect_uri,
        state_ttl=timedelta(seconds=settings.oauth_state_ttl_s),
    )


def webhook_intake(
    settings: ConnectorSettings, broker: KafkaBroker, db: AsyncDatabase[dict[str, Any]]
) -> WebhookIntake:
    secret = settings.stripe_webhook_secret
    return WebhookIntake(
        stripe_secrets=StripeWebhookSecrets.from_setting(
            None if secret is None else secret.get_secret_value()
        ),
        queue=KafkaSyncEventQueue(broker),
        stripe_accounts=MongoStripeAccounts(db),
        public_base_url=settings.public_base_url,
    )


@dataclass
class Wiring:
    """The production adapters and the broker with its subscribers, built without any I/O."""

    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    http: httpx.AsyncClient
    broker: KafkaBroker
    services: Services


def wire(settings: ConnectorSettings, tracer_provider: TracerProvider | None = None) -> Wiring:
    mongo = connect(settings.mongodb_url)
    db = mongo[settings.mongodb_database]
    http = httpx.AsyncClient(timeout=timeout(settings.processor_timeout_s), follow_redirects=False)
    broker = build_broker(
        settings,
        service=SERVICE,
        tracer_provider=tracer_provider,
    )
    services = Services(
        connections=MongoConnectionStore(db),
        oauth_states=MongoOAuthStateStore(db),
        stripe=StripeHttpGateway(
            http,
            api_base=settings.stripe_api_base,
            connect_base=settings.stripe_connect_base,
            platform_secret_key=settings.stripe_platform_secret_key,
            client_id=settings.stripe_client_id,
        ),
        chargebee=ChargebeeHttpGateway(http, url_template=settings.chargebee_api_url_template),
        events=KafkaEventPublisher(broker),
        cipher=settings.credential_cipher(),
        sealed_secrets=SealedBoxSecrets(settings.connector_private_key),
        stripe_platform=stripe_platform(settings),
        return_urls=settings.return_url_policy(),
        retry_base=timedelta(seconds=settings.outbox_relay_interval_s),
        import_counts=MongoImportCounts(db),
        webhooks=webhook_intake(settings, broker, db),
        sync_states=MongoSyncStates(db),
    )
    subscribe_onboarding_requests(broker, services)
    subscribe_import_progress(broker, services)
    declare_publications(
        broker,
        {
            topics.CONNECTIONS: list(CONNECTION_EVENTS.types),
            SYNC_EVENTS_TOPIC: [ProcessorEventReceived],
            topics.OFFERS: list(OFFER_EVENTS.types),
        },
    )
    return Wiring(mongo, db, http, broker, services)


@asynccontextmanager
async def production_runtime(settings: ConnectorSettings) -> AsyncIterator[Runtime]:
    tracer_provider = configure_tracing(SERVICE, settings)
    wiring = wire(settings, tracer_provider)
    mongo, db, http, broker, services = wiring.mongo, wiring.db, wiring.http, wiring.broker, wiring.services

    async def mongodb_ready() -> None:
        await db.command("ping")

    async def kafka_ready() -> None:
        if not await broker.ping(KAFKA_PING_TIMEOUT_S):
            raise ConnectionError("the Kafka broker does not answer")

    try:
        await ensure_indexes(db)
        await ensure_webhook_indexes(db)
        await broker.start()
        relay = asyncio.create_task(run_relay(services, interval_s=settings.outbox_relay_interval_s))
        try:
            yield Runtime(services, {"kafka": kafka_ready, "mongodb": mongodb_ready})
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
    finally:
        await stop_broker(broker)
        await http.aclose()
        await mongo.close()
        tracer_provider.shutdown()


def create_app(settings: ConnectorSettings, runtime: RuntimeFactory = production_runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings) as started:
            app.state.services = started.services
            app.state.readiness = started.readiness
            yield

    app = FastAPI(
        title="Connector",
        version="1.0.0",
        summary="Connects a business's Stripe or Chargebee account and starts importing its billing history.",
        lifespan=lifespan,
    )
    app.state.account_tokens = AccountTokens(settings.api_jwt_secret)
    install_error_handlers(app)
    # Added last, so outermost: the access log line runs inside the server span and carries its trace.
    app.add_middleware(AccessLog)
    app.add_middleware(TracedRequests)
    app.include_router(http_connections.router)
    app.include_router(http_oauth.router)
    app.include_router(http_webhooks.router)
    install_onboarding_page(app, settings)

    def check(name: str) -> ReadinessCheck:
        async def run() -> None:
            readiness: Mapping[str, ReadinessCheck] = getattr(app.state, "readiness", {})
            if name not in readiness:
                raise RuntimeError(f"{name} is not started")
            await readiness[name]()

        return run

    app.include_router(operational_router({"kafka": check("kafka"), "mongodb": check("mongodb")}))
    return app
