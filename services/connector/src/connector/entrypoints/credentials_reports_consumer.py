"""The importer's reports of dead credentials (internal ``connector.connection-reports.v1``):
each one goes to the lost-credentials use case, which acts on the first report of a loss only."""

from __future__ import annotations

from typing import Final

import structlog
from contracts.runtime.kafka import subscribe
from contracts.runtime.logging import get_logger
from contracts.sync import CONNECTION_REPORTS_TOPIC, CredentialsLost
from faststream.kafka import KafkaBroker, KafkaMessage

from connector.service.dependencies import Dependencies
from connector.service.lose_credentials import lose_credentials

#: One group per subscription: scaling or replaying it moves no other consumer of the connector.
CONSUMER_GROUP: Final = "connector-connection-reports"

_log = get_logger("connector.credentials_reports")


def subscribe_credentials_reports(broker: KafkaBroker, deps: Dependencies) -> None:
    async def handle(message: KafkaMessage) -> None:
        """CredentialsLost from the importer's sync: the connection becomes needs_reconnect."""
        # A malformed report is dead-lettered at once by the pipeline (no retry would help).
        report = CredentialsLost.model_validate_json(message.body)
        with structlog.contextvars.bound_contextvars(
            account_id=report.account_id, connection_id=report.connection_id
        ):
            moved = await lose_credentials(
                deps,
                report.connection_id,
                report.reason,
                account_id=report.account_id,
                credentials_version=report.credentials_version,
            )
            _log.info("credentials_report.handled", reason=report.reason, moved=moved)

    subscribe(
        broker,
        CONNECTION_REPORTS_TOPIC,
        group_id=CONSUMER_GROUP,
        handler=handle,
        messages=[CredentialsLost],
    )
