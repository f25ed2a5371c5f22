"""HTTP server spans that continue the caller's trace, without the OAuth callback's code and state."""

from __future__ import annotations

from typing import Any, Final

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.trace import Span, TracerProvider
from starlette.types import ASGIApp

#: Probes are not worth a span each.
UNTRACED_PATHS: Final = "livez,readyz,metrics"
_QUERY_ATTRIBUTES: Final = ("url.query",)


def _without_query(span: Span, scope: dict[str, Any]) -> None:
    """The callback's query string holds a one-time code and state: keep them out of traces."""
    if not span.is_recording() or not scope.get("query_string"):
        return
    attributes: dict[str, Any] = dict(getattr(span, "attributes", None) or {})
    for key, value in attributes.items():
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
    for key in _QUERY_ATTRIBUTES:
        if key in attributes:
            span.set_attribute(key, "")


class TracedRequests(OpenTelemetryMiddleware):
    """A server span per request, child of the caller's ``traceparent`` (global tracer provider)."""

    def __init__(self, app: ASGIApp, tracer_provider: TracerProvider | None = None) -> None:
        super().__init__(
            app,
            excluded_urls=UNTRACED_PATHS,
            server_request_hook=_without_query,
            exclude_spans=["receive", "send"],
            tracer_provider=tracer_provider,
        )
