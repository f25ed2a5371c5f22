"""The mail catcher's HTTP side: a page a person can read and a small JSON API.

- ``GET /``: the received messages, newest first; ``GET /messages/<id>``: one message.
- ``GET /api/messages`` (JSON list), ``GET /api/messages/<id>``, ``DELETE /api/messages``.
- ``GET /api/refusal``, ``PUT /api/refusal`` ``{"count": 2, "stage": "RCPT", "permanent": false}``,
  ``DELETE /api/refusal``.
- ``GET /livez``, ``GET /readyz``.
"""

from __future__ import annotations

import json
import threading
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from devstack.mailcatcher import CaughtMessage, MailCatcher, Stage

_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 1rem; }
iframe { width: 100%; height: 32rem; border: 1px solid #ddd; }
.muted { color: #777; }
"""


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_PAGE_STYLE}</style></head><body>{body}</body></html>"
    ).encode()


def _list_page(messages: list[CaughtMessage]) -> bytes:
    rows = "".join(
        f"<tr><td>{m.id}</td><td class='muted'>{escape(m.received_at.strftime('%H:%M:%S'))}</td>"
        f"<td>{escape(m.from_ or m.envelope_from)}</td><td>{escape(', '.join(m.to or m.envelope_to))}</td>"
        f"<td><a href='/messages/{m.id}'>{escape(m.subject or '(no subject)')}</a></td></tr>"
        for m in reversed(messages)
    )
    table = (
        "<table><tr><th>#</th><th>received (UTC)</th><th>from</th><th>to</th><th>subject</th></tr>"
        f"{rows}</table>"
        if messages
        else "<p class='muted'>No messages yet. This page does not refresh by itself.</p>"
    )
    return _page(
        "Mail catcher",
        f"<h1>Mail catcher</h1><p class='muted'>{len(messages)} message(s).</p>{table}"
        "<p class='muted'>JSON: <a href='/api/messages'>/api/messages</a></p>",
    )


def _message_page(message: CaughtMessage) -> bytes:
    html_part = (
        f"<h2>HTML part</h2><iframe sandbox srcdoc='{escape(message.html, quote=True)}'></iframe>"
        if message.html
        else "<p class='muted'>No HTML part.</p>"
    )
    text_part = (
        f"<h2>Text part</h2><pre>{escape(message.text)}</pre>"
        if message.text
        else "<p class='muted'>No text part.</p>"
    )
    return _page(
        message.subject,
        f"<p><a href='/'>← all messages</a></p><h1>{escape(message.subject or '(no subject)')}</h1>"
        f"<p>From: {escape(message.from_)}<br>To: {escape(', '.join(message.to))}<br>"
        f"<span class='muted'>Envelope: {escape(message.envelope_from)} → "
        f"{escape(', '.join(message.envelope_to))}</span></p>{text_part}{html_part}",
    )


class MailCatcherHttpServer:
    """Serves one ``MailCatcher`` on ``host:port`` from a daemon thread."""

    def __init__(self, catcher: MailCatcher, host: str, port: int) -> None:
        handler = _handler_for(catcher)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mailcatcher-http", daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler_for(catcher: MailCatcher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "devstack-mailcatcher"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path in ("/livez", "/readyz"):
                self._json(HTTPStatus.OK, {"status": "ok"})
            elif path == "/":
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", _list_page(catcher.messages))
            elif path == "/api/messages":
                self._json(HTTPStatus.OK, [m.to_json() for m in catcher.messages])
            elif path == "/api/refusal":
                refusal = catcher.refusal
                self._json(HTTPStatus.OK, refusal.to_json() if refusal else None)
            elif (message := self._message_at(path)) is not None:
                if path.startswith("/api/"):
                    self._json(HTTPStatus.OK, message.to_json())
                else:
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", _message_page(message))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": {"code": "not_found", "message": path}})

        def do_DELETE(self) -> None:
            path = self.path.rstrip("/")
            if path == "/api/messages":
                catcher.clear()
            elif path == "/api/refusal":
                catcher.accept()
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": {"code": "not_found", "message": path}})
                return
            self._send(HTTPStatus.NO_CONTENT, "text/plain", b"")

        def do_PUT(self) -> None:
            if self.path.rstrip("/") != "/api/refusal":
                self._json(HTTPStatus.NOT_FOUND, {"error": {"code": "not_found", "message": self.path}})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                catcher.refuse(
                    body.get("count", 1),
                    stage=Stage(body.get("stage", "RCPT")),
                    permanent=bool(body.get("permanent")),
                )
            except (ValueError, TypeError, AttributeError) as error:
                self._json(
                    HTTPStatus.UNPROCESSABLE_ENTITY, {"error": {"code": "invalid", "message": str(error)}}
                )
                return
            refusal = catcher.refusal
            self._json(HTTPStatus.OK, refusal.to_json() if refusal else None)

        do_POST = do_PUT  # noqa: N815 (http.server's method naming)

        def _message_at(self, path: str) -> CaughtMessage | None:
            prefix, _, tail = path.rpartition("/")
            if prefix not in ("/messages", "/api/messages") or not tail.isdigit():
                return None
            return catcher.message(int(tail))

        def _json(self, status: HTTPStatus, payload: Any) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: every UI refresh would print a line

    return Handler
