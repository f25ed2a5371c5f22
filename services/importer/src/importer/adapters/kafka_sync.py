"""Sync's messages on Kafka: records and tombstones on ``billing.*``, ticks on the sync topic, and
reports of dead credentials on the connector's internal topic."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.records import CanonicalRecord
from contracts.runtime.kafka import CONTENT_TYPE_JSON
from contracts.sync import CONNECTION_REPORTS_TOPIC, SYNC_EVENTS_TOPIC, CredentialsLost

from importer.adapters.kafka_publisher import KafkaPublisher
from importer.domain.ports import Clock
from importer.domain.sync import SyncState
from importer.domain.sync_messages import SyncDue

_JSON = ("content-type", CONTENT_TYPE_JSON.encode())


class KafkaSyncPublisher:
    def __init__(self, publisher: KafkaPublisher, clock: Clock) -> None:
        self._publisher = publisher
        self._clock = clock

    async def publish_records(self, records: Sequence[CanonicalRecord]) -> None:
        await self._publisher.publish_records(records)

    async def publish_tombstones(self, keys: Sequence[tuple[str, str]]) -> None:
        await self._publisher.publish_tombstones(keys)

    async def publish_ticks(self, states: Sequence[SyncState]) -> None:
        due_at = self._clock()
        for state in states:
            message = SyncDue.of(state, due_at)
            await self._publisher.send_raw(
                SYNC_EVENTS_TOPIC,
                key=message.key(),
                value=message.model_dump_json().encode(),
                headers=[_JSON, ("event-type", b"SyncDue")],
            )

    async def report_credentials_lost(self, report: CredentialsLost) -> None:
        await self._publisher.send_raw(
            CONNECTION_REPORTS_TOPIC,
            key=report.key(),
            value=report.model_dump_json().encode(),
            headers=[_JSON, ("event-type", b"CredentialsLost")],
        )
