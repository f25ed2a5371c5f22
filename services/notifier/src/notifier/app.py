"""The composition root: real adapters wired to the use cases, the broker and the HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from contracts import topics
from contracts.events import EmailSent
from contracts.runtime.http import operational_router
from contracts.runtime.kafka import build_broker, declare_publications, stop_broker
from contracts.runtime.logging import get_logger
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from pymongo import AsyncMongoClient

from notifier.adapters.jinja_renderer import JinjaEmailRenderer
from notifier.adapters.kafka_receipts import KafkaReceiptPublisher
from notifier.adapters.mongo_ledger import MongoEmailLedger
from notifier.adapters.smtp_mailer import SmtpMailer, SmtpServer
from notifier.domain.delivery import Mailer
from notifier.domain.notices import EmailAddress
from notifier.entrypoints.import_events import subscribe_import_events
from notifier.entrypoints.receipt_relay import run_receipt_relay
from notifier.service.notify_import_outcome import NotifyImportOutcome
from notifier.service.publish_receipts import PublishPendingReceipts
from notifier.service.send_import_email import SendImportEmail, SendPolicy
from notifier.settings import NotifierSettings

SERVICE = "notifier"

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Notifier:
    """Everything the process runs, built once; tests reach in for the broker and the ledger."""

    settings: NotifierSettings
    broker: KafkaBroker
    mongo: AsyncMongoClient[dict[str, Any]]
    ledger: MongoEmailLedger
    send: SendImportEmail
    notify: NotifyImportOutcome
    relay: PublishPendingReceipts


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


def build_notifier(
    settings: NotifierSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    mailer: Mailer | None = None,
) -> Notifier:
    broker = build_broker(
        settings,
        service=SERVICE,
        tracer_provider=tracer_provider,
    )
    # tz_aware: leases are compared with aware UTC datetimes.
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, appname=SERVICE
    )
    ledger = MongoEmailLedger(mongo, settings.mongodb_database)
    receipts = KafkaReceiptPublisher(broker)
    send = SendImportEmail(
        ledger=ledger,
        mailer=mailer or SmtpMailer(smtp_server(settings)),
        renderer=JinjaEmailRenderer(app_url=settings.app_base_url),
        receipts=receipts,
        sender=EmailAddress(settings.smtp_from),
        policy=send_policy(settings),
    )
    notify = NotifyImportOutcome(send)
    subscribe_import_events(broker, notify)
    declare_publications(broker, {topics.NOTIFICATIONS: [EmailSent]})
    relay = PublishPendingReceipts(ledger=ledger, receipts=receipts)
    return Notifier(settings, broker, mongo, ledger, send, notify, relay)


def create_app(
    settings: NotifierSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    mailer: Mailer | None = None,
) -> FastAPI:
    """The HTTP app; its lifespan starts and stops the consumer, the relay and the store client."""
    settings = settings or NotifierSettings()
    notifier = build_notifier(settings, tracer_provider=tracer_provider, mailer=mailer)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await notifier.ledger.ensure_indexes()
        await notifier.broker.start()
        relay = asyncio.create_task(
            run_receipt_relay(notifier.relay, interval_s=notifier.settings.receipt_relay_interval_s),
            name="receipt-relay",
        )
        _log.info("notifier.started", smtp_host=settings.smtp_host, smtp_port=settings.smtp_port)
        try:
            yield
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            await stop_broker(notifier.broker)
            await notifier.mongo.close()
            _log.info("notifier.stopped")

    async def kafka_ready() -> None:
        if not await notifier.broker.ping(timeout=1.5):
            raise ConnectionError("Kafka did not answer")

    async def mongodb_ready() -> None:
        await notifier.mongo.admin.command("ping")

    app = FastAPI(title="notifier", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(operational_router({"kafka": kafka_ready, "mongodb": mongodb_ready}))
    app.state.notifier = notifier
    return app
