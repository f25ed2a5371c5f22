"""Plain routes: a hot route served by a small ASGI app, without FastAPI's request handling.

FastAPI's routing of included routers, dependency solving, parameter validation and response
building cost several times a small request's own work (a processor webhook's: signature, JSON,
one Kafka send). A :class:`PlainRoute` is matched first, ahead of the API's routes, and calls its
ASGI app directly. Everything around the routes still applies to it unchanged: the server span,
the access log line and the request-duration histogram (its ``route`` is the plain route's
template), the body limit (the ``receive`` it reads from is the limited one) and the error envelope
(what its app raises goes to the same exception handlers: an ``HTTPException``, a
``RequestValidationError``, anything unexpected as a 500). Its OpenAPI description stays with a
documented route of the same path in the API's routers, which the plain route shadows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from starlette.requests import ClientDisconnect
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

_JSON: Final = (b"content-type", b"application/json")


class PlainRoute(Route):
    """``path`` (a route template, path parameters in ``scope["path_params"]``) served by ``app``.

    Another method on the path answers 405 with ``Allow`` through the error envelope, as any route.
    """

    def __init__(self, path: str, app: ASGIApp, *, methods: Collection[str]) -> None:
        super().__init__(path, app, methods=list(methods), include_in_schema=False)
        # Starlette would wrap a function as ``endpoint(request)``: this one is ASGI, whatever it is.
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            # What the access log and the request-duration histogram name the request by.
            child_scope["route"] = self
        return match, child_scope


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case), as Starlette's ``Request.headers`` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the body limit, when installed, applies to ``receive``).

    A client gone before its body was all sent raises ``ClientDisconnect``, as ``Request.body()``
    does: a truncated body is never handed on.
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def render_json(content: Any) -> bytes:
    """JSON as FastAPI's ``JSONResponse`` renders it (compact, UTF-8)."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


async def send_json(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with ``body`` (rendered JSON) and the headers ``JSONResponse`` would send."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode()), _JSON],
        }
    )
    await send({"type": "http.response.body", "body": body})


def mark_outcome(scope: Scope, outcome: str) -> None:
    """The ``outcome`` of the access log line (the error code), as the error envelope records it."""
    state: dict[str, Any] = scope.setdefault("state", {})
    state["outcome"] = outcome


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> bytes:
    """The SPEC's error envelope, rendered."""
    return render_json({"error": {"code": code, "message": message, **(details or {})}})
