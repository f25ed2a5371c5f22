"""A tiny keep-alive HTTP client for the sandbox tests (standard library only)."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from dataclasses import dataclass
from email.message import Message
from typing import Any


@dataclass
class Reply:
    status: int
    headers: Message
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text)


class Http:
    """A keep-alive HTTP/1.1 client from the standard library (one per server)."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.base_url = base_url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        bearer: str | None = None,
        basic: str | None = None,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Reply:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        sent = dict(headers or {})
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        if basic is not None:
            sent["Authorization"] = "Basic " + base64.b64encode(f"{basic}:".encode()).decode()
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            try:
                self._conn.request(method, path, body=body, headers=sent)
                response = self._conn.getresponse()
                text = response.read().decode()
                return Reply(response.status, response.headers, text)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def close(self) -> None:
        self._conn.close()
