"""OpenTelemetry tracing: one trace from the connect request to the email, across Kafka and HTTP.

The standard ``OTEL_*`` variables configure the exporter (OTLP over HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set); ``OTEL_SDK_DISABLED=true`` turns tracing off, and then
nothing is instrumented: no no-op spans around each request, message, call or command, no trace
context carried on, no ``trace_id`` in the logs. Trace context crosses Kafka in message headers
through faststream's telemetry middleware, and HTTP through the OpenTelemetry instrumentations of
httpx (outbound calls) and FastAPI (each service's API); pymongo's commands are spans too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from contracts.runtime.settings import CommonSettings

DEPLOYMENT_ENVIRONMENT = "deployment.environment"


def _version_of(service: str) -> str:
    try:
        return version(service)
    except PackageNotFoundError:
        return "unknown"


def configure_tracing(service: str, settings: CommonSettings) -> TracerProvider:
    """Install the process's tracer provider and instrument its HTTP client and store driver."""
    resource = Resource.create(
        {
            SERVICE_NAME: settings.otel_service_name or service,
            SERVICE_VERSION: _version_of(service),
            DEPLOYMENT_ENVIRONMENT: settings.deployment_environment,
        }
    )
    provider = TracerProvider(resource=resource)
    if not settings.otel_sdk_disabled and settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if settings.otel_sdk_disabled:
        return provider
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    PymongoInstrumentor().instrument(tracer_provider=provider)
    return provider
