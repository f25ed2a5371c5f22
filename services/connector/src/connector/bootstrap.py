"""The composition root: real adapters wired to the use cases, behind FastAPI and the Kafka broker."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any, Final

import httpx
from contracts import topics
from contracts.events import CONNECTION_EVENTS, OFFER_EVENTS
from contracts.runtime.http import service_api
from contracts.runtime.kafka import (
    broker_ping,
    build_broker,
    client_security,
    declare_publications,
    stop_broker,
)
from contracts.runtime.mongo import mongo_client, ping
from contracts.runtime.periodic import PeriodicJob, running
from contracts.sync import SYNC_EVENTS_TOPIC, ProcessorEventReceived
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from connector.adapters.chargebee_api import ChargebeeHttpGateway
from connector.adapters.kafka_events import KafkaEventPublisher
from connector.adapters.kafka_sync_events import KafkaSyncEventQueue
from connector.adapters.mongo_connections import MongoConnectionStore
from connector.adapters.mongo_import_counts import MongoImportCounts
from connector.adapters.mongo_oauth_states import MongoOAuthStateStore
from connector.adapters.mongo_offers import MongoOfferStore, ensure_offer_indexes
from connector.adapters.mongo_onboarding_links import MongoOnboardingLinks
from connector.adapters.mongo_store import ensure_indexes
from connector.adapters.mongo_webhook_reads import (
    MongoStripeAccounts,
    MongoSyncStates,
    ensure_webhook_indexes,
)
from connector.adapters.offer_processors import SdkOfferProcessors
from connector.adapters.processor_http import timeout
from connector.adapters.sealed_box import SealedBoxSecrets
from connector.adapters.stripe_api import StripeHttpGateway
from connector.domain.oauth import StripeConnectPlatform
from connector.domain.stripe_signature import StripeWebhookSecrets
from connector.domain.webhooks import WebhookIntake
from connector.entrypoints import http_connections, http_oauth, http_offers, http_webhooks
from connector.entrypoints.credentials_reports_consumer import subscribe_credentials_reports
from connector.entrypoints.http_errors import install_refusal_handler
from connector.entrypoints.imports_consumer import subscribe_import_progress
from connector.entrypoints.metrics import HTTP_REQUESTS
from connector.entrypoints.onboarding_consumer import subscribe_onboarding_requests
from connector.entrypoints.onboarding_page import install_onboarding_page
from connector.service.dependencies import Dependencies
from connector.service.expire_pending import expire_pending_authorizations
from connector.service.outbox import relay_unpublished
from connector.service.revoke_grants import revoke_pending_grants
from connector.settings import ConnectorSettings

SERVICE: Final = "connector"
#: A store that does not answer fails the request in seconds, not the driver's 30.
SERVER_SELECTION_TIMEOUT_MS: Final = 5000


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
    settings: ConnectorSettings, queue: KafkaSyncEventQueue, db: AsyncDatabase[dict[str, Any]]
) -> WebhookIntake:
    secret = settings.stripe_webhook_secret
    return WebhookIntake(
        stripe_secrets=StripeWebhookSecrets.from_setting(
            None if secret is None else secret.get_secret_value()
        ),
        queue=queue,
        stripe_accounts=MongoStripeAccounts(db),
        public_base_url=settings.public_base_url,
    )


def build(settings: ConnectorSettings, **overrides: Any) -> FastAPI:
    """The connector, built without I/O; ``overrides`` replace fields of :class:`Dependencies` (fakes).

    Without overrides, the lifespan starts the store's indexes, the broker and the relays, and closes
    all of it.
    """
    mongo = mongo_client(
        settings.mongodb_url, service=SERVICE, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS
    )
    db = mongo[settings.mongodb_database]
    http = httpx.AsyncClient(timeout=timeout(settings.processor_timeout_s), follow_redirects=False)
    broker = build_broker(settings, service=SERVICE)
    webhook_queue = KafkaSyncEventQueue(
        settings.kafka_bootstrap_servers, client_id=f"{SERVICE}-webhooks", security=client_security(settings)
    )
    deps = Dependencies(
        connections=MongoConnectionStore(db),
        oauth_states=MongoOAuthStateStore(db),
        onboarding_links=MongoOnboardingLinks(db),
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
        pending_authorization_ttl=timedelta(seconds=settings.pending_authorization_ttl_s),
        import_counts=MongoImportCounts(db),
        webhooks=webhook_intake(settings, webhook_queue, db),
        sync_states=MongoSyncStates(db),
        offers=MongoOfferStore(db),
        offer_processors=SdkOfferProcessors(
            stripe_api_base=settings.stripe_api_base,
            chargebee_url_template=settings.chargebee_api_url_template,
            timeout_s=settings.processor_timeout_s,
        ),
    )
    deps = dataclasses.replace(deps, **overrides)
    subscribe_onboarding_requests(broker, deps)
    subscribe_import_progress(broker, deps)
    subscribe_credentials_reports(broker, deps)
    declare_publications(
        broker,
        {
            topics.CONNECTIONS: list(CONNECTION_EVENTS.types),
            SYNC_EVENTS_TOPIC: [ProcessorEventReceived],
            topics.OFFERS: list(OFFER_EVENTS.types),
        },
    )
    interval_s = settings.outbox_relay_interval_s
    relays = (
        PeriodicJob(
            "outbox.relay",
            lambda: relay_unpublished(deps, older_than=timedelta(seconds=interval_s)),
            interval_s,
        ),
        PeriodicJob("stripe_grant.relay", lambda: revoke_pending_grants(deps), interval_s),
        PeriodicJob(
            "pending_authorization.expiry",
            lambda: expire_pending_authorizations(deps),
            settings.pending_authorization_check_s,
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(mongo.close)
            stack.push_async_callback(http.aclose)
            await ensure_indexes(db)
            await ensure_offer_indexes(db)
            await ensure_webhook_indexes(db)
            await broker.start()
            stack.push_async_callback(stop_broker, broker)
            await webhook_queue.start()
            stack.push_async_callback(webhook_queue.stop)
            await stack.enter_async_context(running(*relays))
            yield

    app = service_api(
        settings,
        readiness={"kafka": broker_ping(broker), "mongodb": lambda: ping(mongo)},
        routers=[http_connections.router, http_oauth.router, http_webhooks.router, http_offers.router],
        jwt_secret=settings.api_jwt_secret,
        request_durations=HTTP_REQUESTS,
        plain_routes=http_webhooks.PLAIN_ROUTES,
        title="Connector",
        version="1.0.0",
        summary="Connects a business's Stripe or Chargebee account and starts importing its billing history.",
        # Over fakes (tests), there is nothing to start.
        lifespan=None if overrides else lifespan,
    )
    app.state.dependencies = deps
    app.state.broker = broker
    install_refusal_handler(app)
    install_onboarding_page(app, settings)
    return app
