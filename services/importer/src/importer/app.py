"""The composition root: settings in, a FastAPI app out, with the broker and consumers in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from contracts import topics
from contracts.connections import CredentialCipher
from contracts.events import (
    CONNECTION_EVENTS,
    ImportCompleted,
    ImportFailed,
    ImportProgressed,
    ImportStarted,
)
from contracts.records import RECORD_TYPES
from contracts.runtime.consumer import RetryPolicy
from contracts.runtime.http import operational_router
from contracts.runtime.kafka import (
    build_broker,
    client_security,
    declare_publications,
    stop_broker,
    subscribe,
    subscribe_events,
)
from contracts.runtime.logging import configure_logging, get_logger
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pymongo import AsyncMongoClient

from importer.adapters.announced_imports import MongoAnnouncedImports
from importer.adapters.connection_sources import ConnectionSourceProvider
from importer.adapters.kafka_publisher import BrokerEventPublisher, KafkaPublisher
from importer.adapters.mongo_imports import MongoImportRepository
from importer.adapters.mongo_page_ledger import MongoPageLedger
from importer.adapters.mongo_records import MongoRecordStore
from importer.adapters.mongo_store import connect, ensure_indexes
from importer.adapters.processor_http import new_http_client
from importer.adapters.rate_budget import MongoRateBudget
from importer.adapters.sources import ProcessorLimits
from importer.domain.page_requests import PAGE_REQUESTS_TOPIC, PageRequestMessage
from importer.domain.planning import SlicingPolicy
from importer.entrypoints import http
from importer.entrypoints.auth import TokenVerifier
from importer.entrypoints.connections import connection_dead_letter_handler, connection_event_handler
from importer.entrypoints.errors import install_error_handlers
from importer.entrypoints.page_requests import page_dead_letter_handler, page_request_handler
from importer.service.dependencies import Dependencies, Tuning
from importer.service.recovery import recover
from importer.settings import CONSUMER_GROUP, SERVICE_NAME, ImporterSettings
from importer.sync_runtime import SyncRuntime

_log = get_logger(__name__)


def tuning_of(settings: ImporterSettings) -> Tuning:
    def slicing(chains_per_resource: int, import_chains: int) -> SlicingPolicy:
        return SlicingPolicy(
            chains_per_resource=chains_per_resource,
            import_chains=import_chains,
            min_pages_per_slice=settings.min_pages_per_slice,
        )

    return Tuning(
        stripe_live_slicing=slicing(
            settings.stripe_live_chains_per_resource, settings.stripe_live_import_chains
        ),
        stripe_test_slicing=slicing(
            settings.stripe_test_chains_per_resource, settings.stripe_test_import_chains
        ),
        chargebee_slicing=slicing(settings.chargebee_chains_per_resource, settings.chargebee_import_chains),
        progress_interval_s=settings.progress_interval_s,
        finalize_lease_s=settings.finalize_lease_s,
        stale_page_after_s=settings.stale_page_after_s,
    )


class Importer:
    """Everything the process runs, built without I/O; ``start``/``stop`` open and close it."""

    def __init__(self, settings: ImporterSettings, *, tracer_provider: TracerProvider | None = None) -> None:
        self.settings = settings
        self.mongo: AsyncMongoClient[dict[str, Any]] = connect(settings.mongodb_url)
        self.database = self.mongo[settings.mongodb_database]
        self.imports = MongoImportRepository(self.database)
        self.records = MongoRecordStore(self.database)
        self.broker = build_broker(settings, service=SERVICE_NAME, tracer_provider=tracer_provider)
        #: The importer's own aiokafka clients (records, page requests) authenticate as its broker does.
        self.kafka_client_options = client_security(settings)
        self.publisher = KafkaPublisher(
            settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, security=self.kafka_client_options
        )
        self.http = new_http_client()
        self.sources = ConnectionSourceProvider(
            self.database,
            CredentialCipher.from_setting(settings.credentials_keys.get_secret_value()),
            stripe_api_base=settings.stripe_api_base,
            chargebee_url_template=settings.chargebee_api_url_template,
            rate_budget=MongoRateBudget(self.database),
            http=self.http,
            limits=ProcessorLimits(headroom=settings.processor_rate_headroom),
        )
        self.deps = Dependencies(
            imports=self.imports,
            ledger=MongoPageLedger(self.mongo, self.database),
            records=self.records,
            events=BrokerEventPublisher(self.broker),
            record_publisher=self.publisher,
            page_publisher=self.publisher,
            sources=self.sources,
            tuning=tuning_of(settings),
        )
        subscribe_events(
            self.broker,
            topics.CONNECTIONS,
            group_id=CONSUMER_GROUP,
            events=CONNECTION_EVENTS,
            handler=connection_event_handler(self.deps),
            on_dead_letter=connection_dead_letter_handler(self.deps),
        )
        # Pages are independent of one another: many at once, inside partitions too.
        subscribe(
            self.broker,
            PAGE_REQUESTS_TOPIC,
            group_id=CONSUMER_GROUP,
            handler=page_request_handler(self.deps),
            concurrency=settings.page_concurrency,
            ordered=False,
            policy=RetryPolicy(
                max_attempts=settings.page_max_attempts,
                base_delay_s=settings.page_retry_base_delay_s,
                max_delay_s=settings.page_retry_max_delay_s,
                outage_max_delay_s=settings.consumer_outage_max_delay_s,
            ),
            on_dead_letter=page_dead_letter_handler(self.deps),
            messages=[PageRequestMessage],
        )
        # What the importer publishes, for its AsyncAPI document (records and page requests leave
        # through the bulk producer, not these publishers).
        declare_publications(
            self.broker,
            {
                topics.IMPORTS: [ImportStarted, ImportProgressed, ImportCompleted, ImportFailed],
                PAGE_REQUESTS_TOPIC: [PageRequestMessage],
                **{record_type.topic: [record_type] for record_type in RECORD_TYPES},
            },
        )
        self.sync = SyncRuntime(
            settings,
            database=self.database,
            broker=self.broker,
            publisher=self.publisher,
            http=self.http,
            rate_budget=MongoRateBudget(self.database),
            pipeline=self.deps,
        )
        declare_publications(self.broker, self.sync.publications)
        self._recovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.settings
        await ensure_indexes(self.database)
        await self.publisher.start()
        await self.broker.start()
        self._recovery = asyncio.create_task(self._recover_forever(), name="importer-recovery")
        await self.sync.start()
        _log.info("importer.started", page_concurrency=settings.page_concurrency)

    async def stop(self) -> None:
        await self.sync.stop()
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        await stop_broker(self.broker)
        await self.publisher.stop()
        await self.sources.aclose()
        await self.http.aclose()
        await self.mongo.close()
        _log.info("importer.stopped")

    async def _recover_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recovery_interval_s)
            try:
                await recover(self.deps)
            except Exception:  # the next round tries again; one bad round must not end recovery
                _log.exception("recovery.failed")

    async def kafka_ready(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("kafka is not reachable")

    async def mongodb_ready(self) -> None:
        await self.mongo.admin.command("ping")


def create_app(
    settings: ImporterSettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """The HTTP app; its lifespan starts and stops the consumers, the producer and the store client."""
    settings = settings or ImporterSettings()
    configure_logging(SERVICE_NAME, level=settings.log_level, log_format=settings.log_format)
    importer = Importer(settings, tracer_provider=tracer_provider)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await importer.start()
        try:
            yield
        finally:
            await importer.stop()

    app = FastAPI(
        title="importer",
        version="1.0.0",
        description="A connected processor's billing history: its imports, past cancellations, churn.",
        lifespan=lifespan,
    )
    app.state.importer = importer
    app.state.imports = importer.imports
    app.state.announced_imports = MongoAnnouncedImports(importer.database)
    app.state.record_queries = importer.records
    app.state.token_verifier = TokenVerifier(settings.api_jwt_secret.get_secret_value())
    install_error_handlers(app)
    app.include_router(http.router)
    app.include_router(operational_router({"kafka": importer.kafka_ready, "mongodb": importer.mongodb_ready}))
    return app
