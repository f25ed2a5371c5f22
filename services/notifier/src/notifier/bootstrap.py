"""The composition root: real adapters wired to the use cases, the broker and the HTTP app."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any, Final

from contracts import topics
from contracts.events import EmailSent
from contracts.runtime.http import service_api
from contracts.runtime.kafka import broker_ping, build_broker, declare_publications, stop_broker
from contracts.runtime.logging import get_logger
from contracts.runtime.mongo import mongo_client, ping
from contracts.runtime.periodic import PeriodicJob, running
from fastapi import FastAPI

from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.adapters.kafka_receipts import KafkaReceiptPublisher
from notifier.adapters.mongo_ledger import MongoEmailLedger
from notifier.adapters.smtp_mailer import SmtpMailer, SmtpServer
from notifier.domain.notices import EmailAddress
from notifier.entrypoints.connection_events import subscribe_connection_events
from notifier.entrypoints.import_events import subscribe_import_events
from notifier.service.dependencies import Dependencies
from notifier.service.notify_connection_lost import NotifyConnectionLost
from notifier.service.notify_import_outcome import NotifyImportOutcome
from notifier.service.publish_receipts import PublishPendingReceipts
from notifier.service.send_import_email import SendImportEmail, SendPolicy
from notifier.settings import NotifierSettings

SERVICE: Final = "notifier"

_log = get_logger(__name__)


def smtp_server(settings: NotifierSettings) -> SmtpServer:
    return SmtpServer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout_s=settings.smtp_timeout_s,
    )


def send_policy(settings: NotifierSettings) -> SendPolicy:
    return SendPolicy(
        attempts=settings.email_send_attempts,
        base_delay_s=settings.email_retry_base_delay_s,
        max_delay_s=settings.email_retry_max_delay_s,
        lease=timedelta(seconds=settings.email_lease_s),
    )


def build(settings: NotifierSettings, **overrides: Any) -> FastAPI:
    """The notifier, built without I/O; ``overrides`` replace fields of :class:`Dependencies` (fakes).

    Without overrides, the lifespan starts the ledger's indexes, the consumer and the receipt relay, and
    stops them.
    """
    broker = build_broker(settings, service=SERVICE)
    mongo = mongo_client(settings.mongodb_url, service=SERVICE)
    ledger = MongoEmailLedger(mongo, settings.mongodb_database)
    deps = Dependencies(
        ledger=ledger,
        mailer=SmtpMailer(smtp_server(settings)),
        renderer=JinjaEmailRenderer(app_url=settings.app_base_url),
        receipts=KafkaReceiptPublisher(broker),
    )
    deps = dataclasses.replace(deps, **overrides)
    send = SendImportEmail(
        ledger=deps.ledger,
        mailer=deps.mailer,
        renderer=deps.renderer,
        receipts=deps.receipts,
        sender=EmailAddress(settings.smtp_from),
        policy=send_policy(settings),
    )
    subscribe_import_events(broker, NotifyImportOutcome(send))
    subscribe_connection_events(broker, NotifyConnectionLost(send))
    declare_publications(broker, {topics.NOTIFICATIONS: [EmailSent]})
    relay = PublishPendingReceipts(ledger=deps.ledger, receipts=deps.receipts)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(mongo.close)
            await ledger.ensure_indexes()
            await broker.start()
            stack.push_async_callback(stop_broker, broker)
            await stack.enter_async_context(
                running(PeriodicJob("receipts.relay", relay, settings.receipt_relay_interval_s))
            )
            _log.info("notifier.started", smtp_host=settings.smtp_host, smtp_port=settings.smtp_port)
            yield
        _log.info("notifier.stopped")

    app = service_api(
        settings,
        readiness={"kafka": broker_ping(broker), "mongodb": lambda: ping(mongo)},
        title="notifier",
        # Over fakes (tests), there is nothing to start.
        lifespan=None if overrides else lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.dependencies = deps
    app.state.broker = broker
    return app
