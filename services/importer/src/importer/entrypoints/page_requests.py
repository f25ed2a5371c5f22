"""The ``importer.page-requests.v1`` consumer: one message, one page; a dead letter fails the import."""

from __future__ import annotations

import time
from typing import Final

from contracts.runtime.consumer import MessageHandler
from contracts.runtime.dead_letter import DeadLetter, OnDeadLetter
from contracts.runtime.logging import get_logger, redact_text
from contracts.runtime.metrics import REGISTRY
from faststream.kafka.message import KafkaMessage
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from importer.domain.model import FailureCode, failure_code_of
from importer.domain.page_requests import PageRequestMessage
from importer.domain.source import SourceErrorCode
from importer.service.dependencies import Dependencies
from importer.service.outcomes import fail_import
from importer.service.pages import import_page

_log = get_logger(__name__)

PAGES_HANDLED: Final = Counter(
    "importer_pages_total", "Page requests handled, by outcome", ["outcome"], registry=REGISTRY
)
OBJECTS_IMPORTED: Final = Counter(
    "importer_objects_total", "Processor objects imported, by resource", ["resource"], registry=REGISTRY
)
PAGE_SECONDS: Final = Histogram(
    "importer_page_duration_seconds",
    "Time to import one page: fetch, normalise, store, publish, ledger",
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)


def page_request_handler(deps: Dependencies) -> MessageHandler:
    """One page request; the consumption pipeline's span (the request's trace) covers it."""

    async def handle(kafka_message: KafkaMessage) -> None:
        message = PageRequestMessage.model_validate_json(kafka_message.body)
        started = time.perf_counter()
        with bound_contextvars(
            import_id=message.import_id,
            account_id=message.account_id,
            page_id=message.page_id,
            message_id=kafka_message.message_id,
        ):
            record = kafka_message.raw_message
            partition = None if isinstance(record, tuple) else record.partition
            report = await import_page(deps, message.import_id, message.page_id, partition=partition)
            elapsed = time.perf_counter() - started
            PAGES_HANDLED.labels(report.outcome.value).inc()
            PAGE_SECONDS.observe(elapsed)
            OBJECTS_IMPORTED.labels(message.resource).inc(report.objects)
            _log.info(
                "page.handled",
                resource=message.resource,
                outcome=report.outcome.value,
                objects=report.objects,
                children=report.children,
                duration_ms=round(elapsed * 1000, 1),
                timings_ms=report.timings_ms,
            )

    return handle


def page_dead_letter_handler(deps: Dependencies) -> OnDeadLetter:
    """A page that could not be imported fails its import, with the processor's code when there is one."""

    async def on_dead_letter(letter: DeadLetter) -> None:
        try:
            message = PageRequestMessage.model_validate_json(letter.body)
        except ValidationError:
            _log.error("page.unreadable_dead_letter", topic=letter.topic)
            return
        code = getattr(letter.error, "code", None)
        if isinstance(code, SourceErrorCode):
            code = failure_code_of(code)
        reason = redact_text(str(letter.error))[:300] or type(letter.error).__name__
        await fail_import(
            deps,
            message.import_id,
            str(code) if code else FailureCode.PAGE_FAILED.value,
            f"a page of {message.resource} could not be imported after {letter.attempts} attempts: {reason}",
        )

    return on_dead_letter
