"""Wires sync into the importer process: its adapters, consumers and the scheduler's periodic job.

Kept beside the composition root (``bootstrap``) so that sync is one block there: built from the same
store, broker, bulk producer, HTTP client and rate budget as the import pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from contracts import topics
from contracts.events import IMPORT_EVENTS, ProcessorReconnected
from contracts.runtime.kafka import subscribe, subscribe_events
from contracts.runtime.periodic import PeriodicJob
from contracts.sync import (
    CONNECTION_REPORTS_TOPIC,
    SYNC_EVENTS_TOPIC,
    CredentialsLost,
    ProcessorEventReceived,
)
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from importer.adapters.connection_credentials import ProcessorAccess
from importer.adapters.kafka_publisher import KafkaPublisher
from importer.adapters.kafka_sync import KafkaSyncPublisher
from importer.adapters.mongo_sync import MongoSyncRecords, MongoSyncStateStore, ensure_sync_indexes
from importer.adapters.sync_readers import ConnectionSyncReaders
from importer.domain.model import StartImport
from importer.domain.sync_messages import SyncDue, parse_sync_message
from importer.entrypoints.sync_events import handle_sync_message, sync_trigger_handler
from importer.service.dependencies import Dependencies
from importer.service.start_import import start_import
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_lifecycle import stop_after_loss
from importer.service.sync_poll import emit_due_ticks, measure_lag
from importer.service.sync_resume import resume_after_reconnect
from importer.settings import ImporterSettings

#: One consumer group per subscription, so that scaling or replaying one moves no other:
#: sync's own read of imports.v1 (it starts syncs after imports), and the sync events.
SYNC_TRIGGERS_GROUP: Final = "importer-sync"
SYNC_EVENTS_GROUP: Final = "importer-sync-events"
#: Sync messages handled at once. Not ordered by key: one account's events are applied concurrently,
#: each object's one at a time (``service.sync_work``); many in flight let a burst's events about one
#: object share a re-read.
SYNC_CONCURRENCY: Final = 128


class SyncRuntime:
    def __init__(
        self,
        settings: ImporterSettings,
        *,
        database: AsyncDatabase[Any],
        broker: KafkaBroker,
        publisher: KafkaPublisher,
        access: ProcessorAccess,
        pipeline: Dependencies,
    ) -> None:
        self._settings = settings
        self._database = database
        self._pipeline = pipeline
        self.readers = ConnectionSyncReaders(
            access,
            share=settings.sync_rate_share,
            event_page_size=settings.sync_event_page_size,
            event_pages=settings.sync_event_pages,
        )

        async def start_full_import(command: StartImport) -> object:
            return await start_import(pipeline, command)

        self.deps = SyncDependencies(
            states=MongoSyncStateStore(database),
            records=MongoSyncRecords(database),
            readers=self.readers,
            publisher=KafkaSyncPublisher(publisher, pipeline.clock),
            start_full_import=start_full_import,
            import_of=pipeline.imports.get,
            interval_s=settings.sync_interval_s,
        )
        deps = self.deps

        async def consume_sync_events(message: KafkaMessage) -> None:
            """SyncDue ticks and ProcessorEventReceived webhook events, one object at a time."""
            parsed = parse_sync_message(message.body)
            if parsed is not None:
                await handle_sync_message(deps, parsed)

        subscribe(
            broker,
            SYNC_EVENTS_TOPIC,
            group_id=SYNC_EVENTS_GROUP,
            handler=consume_sync_events,
            concurrency=SYNC_CONCURRENCY,
            ordered=False,
            messages=[SyncDue, ProcessorEventReceived],
        )
        # A disconnection needs no consumer: the next poll finds the connection gone and stops. A loss
        # of credentials reaches sync through the pipeline's connections.v1 consumer (stop_sync).
        subscribe_events(
            broker,
            topics.IMPORTS,
            group_id=SYNC_TRIGGERS_GROUP,
            events=IMPORT_EVENTS,
            handler=sync_trigger_handler(deps, pipeline.imports, self.readers.connection),
        )
        self.publications: dict[str, Sequence[type[BaseModel]]] = {
            SYNC_EVENTS_TOPIC: [SyncDue, ProcessorEventReceived],
            CONNECTION_REPORTS_TOPIC: [CredentialsLost],
        }

    async def reconnected(self, event: ProcessorReconnected) -> str:
        """``ProcessorReconnected`` (connections.v1, the pipeline's consumer): resume or re-import."""
        return await resume_after_reconnect(
            self.deps, self.readers.connection, event, forget_sources=self._pipeline.sources.forget
        )

    async def stop_sync(self, connection_id: str, reason: str) -> bool:
        """``ConnectionLost`` (connections.v1, the pipeline's consumer): stop the connection's sync
        now, unless it was reconnected since."""
        return await stop_after_loss(self.deps, connection_id, reason)

    async def start(self) -> None:
        await ensure_sync_indexes(self._database)

    def scheduler(self) -> PeriodicJob:
        """Emits the due sync ticks and measures the lag, every schedule period (at most the sync
        interval); a failed round logs ``sync.schedule_failed``."""
        period_s = min(self._settings.sync_schedule_period_s, self._settings.sync_interval_s)
        return PeriodicJob("sync.schedule", self._schedule, period_s)

    async def _schedule(self) -> None:
        await emit_due_ticks(self.deps)
        await measure_lag(self.deps)
