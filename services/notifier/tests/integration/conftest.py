"""The notifier against the real broker, store and SMTP server of the devstack fixtures.

``kafka_bootstrap``, ``mongodb_url``, ``mongodb_database``, ``mailbox`` and ``kafka_events`` come
from the devstack pytest plugin; this file adds the notifier's settings and a publisher of import events;
``notifier_integration_kit`` runs a notifier in-process and makes fresh ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from contracts import topics
from contracts.events import Event
from contracts.runtime.kafka import publish_event
from faststream.kafka import KafkaBroker
from notifier.settings import NotifierSettings
from notifier_integration_kit import APP_URL, PublishImportEvent

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The hook sees the whole session's items: mark only this folder's.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.infra)


@pytest.fixture
def notifier_settings(
    kafka_bootstrap: str, mongodb_url: str, mongodb_database: str, mailbox: Any
) -> NotifierSettings:
    """Real endpoints; short backoffs and lease so a test's retries take well under a second."""
    return NotifierSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=mongodb_database,
        smtp_host=mailbox.host,
        smtp_port=mailbox.smtp_port,
        smtp_from="no-reply@billing-import.test",
        app_base_url=APP_URL,
        smtp_timeout_s=5.0,
        email_send_attempts=4,
        email_retry_base_delay_s=0.05,
        email_retry_max_delay_s=0.2,
        email_lease_s=15.0,
        receipt_relay_interval_s=0.5,
        otel_sdk_disabled=True,
    )


@pytest_asyncio.fixture
async def publish_import_event(kafka_bootstrap: str) -> AsyncIterator[PublishImportEvent]:
    """Publishes on ``imports.v1`` as the importer does (JSON, keyed by account)."""
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    await broker.connect()

    async def publish(event: Event) -> None:
        await publish_event(broker, topics.IMPORTS, event)

    try:
        yield publish
    finally:
        await broker.stop()
