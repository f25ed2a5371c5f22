"""OpenTelemetry tracing: one trace from the connect request to the email, across Kafka and HTTP.

The standard ``OTEL_*`` variables configure the exporter (OTLP over HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set); ``OTEL_SDK_DISABLED=true`` turns tracing off. Trace context
crosses Kafka in message headers through faststream's telemetry middleware.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from contracts.runtime.settings import CommonSettings


def configure_tracing(
    service: str, settings: CommonSettings, *, extra_processors: tuple[SpanProcessor, ...] = ()
) -> TracerProvider:
    """Install and return the process's tracer provider."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name or service}))
    if not settings.otel_sdk_disabled and settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def instrument_http(app: Any, tracer_provider: TracerProvider) -> Any:
    """Wrap an ASGI app so each request is a span continuing the caller's ``traceparent``.

    Operational routes (probes, metrics) are not traced: they would drown the real work.
    """
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        app,
        tracer_provider=tracer_provider,
        excluded_urls="livez,readyz,metrics",
    )
