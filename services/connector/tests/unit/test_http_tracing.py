"""Server spans continue the caller's trace and never record the OAuth callback's query string."""

from __future__ import annotations

import httpx
from connector.entrypoints.http_tracing import TracedRequests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_the_callers_trace_is_continued_without_the_query() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inner = Starlette(routes=[Route("/v1/oauth/stripe/callback", lambda _: PlainTextResponse("ok"))])
    app = TracedRequests(inner, tracer_provider=provider)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c.test") as client:
        await client.get(
            "/v1/oauth/stripe/callback",
            params={"code": "ac_SECRETCODE", "state": "STATEVALUE"},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        await client.get("/livez")

    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    recorded = str(dict(span.attributes or {}))
    assert "SECRETCODE" not in recorded
    assert "STATEVALUE" not in recorded
    assert "/v1/oauth/stripe/callback" in recorded
