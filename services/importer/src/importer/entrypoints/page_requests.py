"""The ``importer.page-requests.v1`` consumer: one message, one page; a dead letter fails the import."""

from __future__ import annotations

import time
from typing import Final

from contracts.runtime.dead_letter import DeadLetter
from contracts.runtime.logging import get_logger, redact_text
from contracts.runtime.metrics import REGISTRY
from opentelemetry import propagate, trace
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from importer.adapters.concurrent_consumer import Handler, OnDeadLetter, Record
from importer.domain.model import FailureCode
from importer.domain.page_requests import PageRequestMessage
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


_tracer = trace.get_tracer(__name__)


def page_request_handler(deps: Dependencies) -> Handler:
    async def handle(record: Record) -> None:
        message = PageRequestMessage.model_validate_json(record.value or b"")
        started = time.perf_counter()
        # The trace the request was published in continues here (and in what this page publishes).
        carrier = {name: value.decode(errors="replace") for name, value in record.headers or ()}
        with (
            _tracer.start_as_current_span(
                f"{record.topic} process",
                context=propagate.extract(carrier),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": record.topic,
                    "messaging.kafka.destination.partition": record.partition,
                    "messaging.kafka.message.offset": record.offset,
                    "importer.import_id": message.import_id,
                    "importer.resource": message.resource,
                },
            ),
            bound_contextvars(
                import_id=message.import_id,
                account_id=message.account_id,
                page_id=message.page_id,
                partition=record.partition,
                offset=record.offset,
            ),
        ):
            report = await import_page(deps, message.import_id, message.page_id)
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
        reason = redact_text(str(letter.error))[:300] or type(letter.error).__name__
        await fail_import(
            deps,
            message.import_id,
            str(code) if code else FailureCode.PAGE_FAILED.value,
            f"a page of {message.resource} could not be imported after {letter.attempts} attempts: {reason}",
        )

    return on_dead_letter
