"""The composition root: settings in, a FastAPI app out, with the broker and consumers in its lifespan."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final

from contracts import topics
from contracts.connections import CredentialCipher
from contracts.events import (
    CONNECTION_EVENTS,
    OFFER_EVENTS,
    AccountDataErased,
    ImportCompleted,
    ImportFailed,
    ImportProgressed,
    ImportStarted,
)
from contracts.records import RECORD_TYPES
from contracts.runtime.consumer import RetryPolicy
from contracts.runtime.http import service_api
from contracts.runtime.kafka import (
    broker_ping,
    build_broker,
    client_security,
    declare_publications,
    stop_broker,
    subscribe,
    subscribe_events,
)
from contracts.runtime.logging import get_logger
from contracts.runtime.mongo import mongo_client, ping
from contracts.runtime.periodic import PeriodicJob, running
from fastapi import FastAPI

from importer.adapters.announced_imports import MongoAnnouncedImports
from importer.adapters.connection_credentials import ProcessorAccess
from importer.adapters.connection_sources import ConnectionSourceProvider
from importer.adapters.kafka_publisher import BrokerEventPublisher, KafkaPublisher
from importer.adapters.learned_limits import MongoLearnedLimitStore, RateLearner
from importer.adapters.mongo_churn import MongoChurnSummaries
from importer.adapters.mongo_erasure import MongoErasureStore
from importer.adapters.mongo_imports import MongoImportRepository
from importer.adapters.mongo_offers import MongoRecoveredRevenueSources
from importer.adapters.mongo_page_ledger import MongoPageLedger
from importer.adapters.mongo_records import MongoRecordStore
from importer.adapters.mongo_store import ensure_indexes
from importer.adapters.processor_http import new_http_client
from importer.adapters.rate_budget import MongoRateBudget
from importer.adapters.sources import ProcessorLimits
from importer.domain.page_requests import PAGE_REQUESTS_TOPIC, PageRequestMessage
from importer.domain.planning import SlicingPolicy
from importer.domain.ports import ChurnSummaries
from importer.entrypoints import http
from importer.entrypoints.connections import connection_dead_letter_handler, connection_event_handler
from importer.entrypoints.offers import offer_event_handler
from importer.entrypoints.page_requests import page_dead_letter_handler, page_request_handler
from importer.service.churn_summaries import ChurnSummaryKeeper, rebuild_unsettled
from importer.service.dependencies import STRIPE_FIRST_WINDOWS, Dependencies, Tuning, utc_now
from importer.service.erase_account import AccountErasure, resume_stalled_erasures
from importer.service.recovery import recover
from importer.settings import SERVICE_NAME, ImporterSettings
from importer.sync_runtime import SyncRuntime

_log = get_logger(__name__)

#: One consumer group per subscription (``importer-<what it consumes>``): scaling on the page requests'
#: lag rebalances no other consumer, and a replay reaches only the group it is for. Sync's are in
#: ``sync_runtime``.
CONNECTIONS_GROUP: Final = "importer-connections"
OFFERS_GROUP: Final = "importer-offers"
PAGE_REQUESTS_GROUP: Final = "importer-page-requests"
#: How often each process looks for churn summaries to rebuild after changes (``churn_summaries``).
CHURN_REBUILD_INTERVAL_S: Final = 2.0


def tuning_of(settings: ImporterSettings) -> Tuning:
    def slicing(chains_per_resource: int, import_chains: int, first_windows: int = 1) -> SlicingPolicy:
        return SlicingPolicy(
            chains_per_resource=chains_per_resource,
            import_chains=import_chains,
            min_pages_per_slice=settings.min_pages_per_slice,
            first_windows=first_windows,
        )

    return Tuning(
        stripe_live_slicing=slicing(
            settings.stripe_live_chains_per_resource, settings.stripe_live_import_chains, STRIPE_FIRST_WINDOWS
        ),
        stripe_test_slicing=slicing(
            settings.stripe_test_chains_per_resource, settings.stripe_test_import_chains, STRIPE_FIRST_WINDOWS
        ),
        chargebee_slicing=slicing(settings.chargebee_chains_per_resource, settings.chargebee_import_chains),
        progress_interval_s=settings.progress_interval_s,
        finalize_lease_s=settings.finalize_lease_s,
        stale_page_after_s=settings.stale_page_after_s,
    )


def with_churn_summaries(deps: Dependencies, summaries: ChurnSummaries | None) -> Dependencies:
    """``deps`` answering churn from stored summaries, when there is a store for them."""
    if summaries is None:
        return deps
    keeper = ChurnSummaryKeeper(deps.imports, deps.queries, summaries, deps.clock)
    return dataclasses.replace(deps, churn_summaries=summaries, churn=keeper)


def churn_jobs(deps: Dependencies) -> list[PeriodicJob]:
    """The background rebuild of churn summaries after changes, when they are kept."""
    keeper, summaries = deps.churn, deps.churn_summaries
    if keeper is None or summaries is None:
        return []
    return [
        PeriodicJob(
            "churn_rebuild",
            lambda: rebuild_unsettled(keeper, summaries, deps.clock),
            CHURN_REBUILD_INTERVAL_S,
        )
    ]


def build(settings: ImporterSettings, **overrides: Any) -> FastAPI:
    """The importer, built without I/O; ``overrides`` replace fields of :class:`Dependencies` (fakes).

    Without overrides, the lifespan starts the store's indexes, the producer, the broker (with the
    connection and page consumers), recovery and sync, and stops them in the reverse order.
    """
    mongo = mongo_client(settings.mongodb_url, service=SERVICE_NAME)
    database = mongo[settings.mongodb_database]
    broker = build_broker(settings, service=SERVICE_NAME)
    #: The importer's own aiokafka clients (records, page requests) authenticate as its broker does.
    kafka_options = client_security(settings)
    publisher = KafkaPublisher(
        settings.kafka_bootstrap_servers, client_id=f"{SERVICE_NAME}-bulk", security=kafka_options
    )
    http_client = new_http_client()
    access = ProcessorAccess(
        database,
        CredentialCipher.from_setting(settings.credentials_keys.get_secret_value()),
        stripe_api_base=settings.stripe_api_base,
        chargebee_url_template=settings.chargebee_api_url_template,
        rate_budget=MongoRateBudget(database),
        http=http_client,
        # The limits the importer starts from: the published ones, Chargebee's as configured.
        limits=ProcessorLimits(
            chargebee_per_minute=settings.chargebee_requests_per_minute,
            headroom=settings.processor_rate_headroom,
        ),
        learner=RateLearner(MongoLearnedLimitStore(database), headroom=settings.processor_rate_headroom),
        probe_live=settings.chargebee_probe_live_sites,
    )
    sources = ConnectionSourceProvider(access)
    records = MongoRecordStore(database)
    recovered_revenue = MongoRecoveredRevenueSources(database)
    events = BrokerEventPublisher(broker)
    erasures = MongoErasureStore(mongo, database)
    deps = Dependencies(
        imports=MongoImportRepository(database),
        ledger=MongoPageLedger(mongo, database),
        records=records,
        events=events,
        record_publisher=publisher,
        page_publisher=publisher,
        sources=sources,
        tuning=tuning_of(settings),
        queries=records,
        announced=MongoAnnouncedImports(database),
        recovered_revenue=recovered_revenue,
        erasure=AccountErasure(store=erasures, tombstones=publisher, events=events, clock=utc_now),
    )
    # Over fakes (tests), churn is computed per request unless a summary store is given.
    churn_summaries = overrides.pop("churn_summaries", None if overrides else MongoChurnSummaries(database))
    deps = with_churn_summaries(dataclasses.replace(deps, **overrides), churn_summaries)
    sync = SyncRuntime(
        settings,
        database=database,
        broker=broker,
        publisher=publisher,
        # Sync's requests queue in this process apart from the import's; both take the store's buckets.
        access=dataclasses.replace(access, rate_budget=MongoRateBudget(database)),
        pipeline=deps,
    )
    declare_publications(broker, sync.publications)
    subscribe_events(
        broker,
        topics.CONNECTIONS,
        group_id=CONNECTIONS_GROUP,
        events=CONNECTION_EVENTS,
        handler=connection_event_handler(deps, on_reconnected=sync.reconnected, stop_sync=sync.stop_sync),
        on_dead_letter=connection_dead_letter_handler(deps),
    )
    subscribe_events(
        broker,
        topics.OFFERS,
        group_id=OFFERS_GROUP,
        events=OFFER_EVENTS,
        handler=offer_event_handler(deps.recovered_revenue),
    )
    # Pages are independent of one another: many at once, inside partitions too.
    page_requests = subscribe(
        broker,
        PAGE_REQUESTS_TOPIC,
        group_id=PAGE_REQUESTS_GROUP,
        handler=page_request_handler(deps),
        concurrency=settings.page_concurrency,
        ordered=False,
        policy=RetryPolicy(
            max_attempts=settings.page_max_attempts,
            base_delay_s=settings.page_retry_base_delay_s,
            max_delay_s=settings.page_retry_max_delay_s,
            outage_max_delay_s=settings.consumer_outage_max_delay_s,
        ),
        on_dead_letter=page_dead_letter_handler(deps),
        messages=[PageRequestMessage],
    )
    # A page's fresh windows whose requests land on a partition this process consumes are fetched
    # as soon as they are planned (``service.prefetch``).
    deps.local.page_partitions = page_requests
    # What the importer publishes, for its AsyncAPI document (records and page requests leave
    # through the bulk producer, not these publishers).
    declare_publications(
        broker,
        {
            topics.IMPORTS: [ImportStarted, ImportProgressed, ImportCompleted, ImportFailed],
            topics.CONNECTIONS: [AccountDataErased],
            PAGE_REQUESTS_TOPIC: [PageRequestMessage],
            **{record_type.topic: [record_type] for record_type in RECORD_TYPES},
        },
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(mongo.close)
            stack.push_async_callback(http_client.aclose)
            stack.push_async_callback(sources.aclose)
            await ensure_indexes(database)
            await recovered_revenue.ensure_indexes()
            await erasures.ensure_indexes()
            await publisher.start()
            stack.push_async_callback(publisher.stop)
            await broker.start()
            stack.push_async_callback(stop_broker, broker)
            jobs = [PeriodicJob("recovery", lambda: recover(deps), settings.recovery_interval_s)]
            jobs.extend(churn_jobs(deps))
            if deps.erasure is not None:
                erasure = deps.erasure
                jobs.append(
                    PeriodicJob(
                        "erase_recovery",
                        lambda: resume_stalled_erasures(erasure),
                        settings.erase_recovery_interval_s,
                    )
                )
            await sync.start()
            await stack.enter_async_context(running(*jobs, sync.scheduler()))
            _log.info("importer.started", page_concurrency=settings.page_concurrency)
            yield
        _log.info("importer.stopped")

    app = service_api(
        settings,
        readiness={"kafka": broker_ping(broker), "mongodb": lambda: ping(mongo)},
        routers=[http.router],
        jwt_secret=settings.api_jwt_secret,
        title="importer",
        version="1.0.0",
        description="A connected processor's billing history: its imports, past cancellations, churn.",
        # Over fakes (tests), there is nothing to start.
        lifespan=None if overrides else lifespan,
    )
    app.state.dependencies = deps
    app.state.broker = broker
    return app
