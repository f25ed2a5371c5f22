"""What Stripe's and Chargebee's HTTP answers have in common: throttling, outages and timeouts."""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from typing import Final

import httpx
from contracts.runtime.backoff import retry_after_s as parse_retry_after

from connector.domain.refusals import ConnectionRefused, processor_unavailable, rate_limited

RETRY_AFTER_MAX_S: Final = 3600
CONNECT_TIMEOUT_S: Final = 5.0


def timeout(total_s: float) -> httpx.Timeout:
    return httpx.Timeout(total_s, connect=min(CONNECT_TIMEOUT_S, total_s))


def retry_after_s(headers: Mapping[str, str] | None) -> int | None:
    """An answer's ``Retry-After`` in whole seconds (from seconds or an HTTP date), within a sane
    range; ``headers`` as the HTTP client or the processor's SDK gives them."""
    headers = headers or {}
    seconds = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    if seconds is None:
        return None
    return max(1, min(math.ceil(seconds), RETRY_AFTER_MAX_S))


def throttled_or_down(processor: str, response: httpx.Response) -> ConnectionRefused | None:
    """The refusal for a 429 or a 5xx answer, else ``None``."""
    if response.status_code == 429:
        return rate_limited(processor, retry_after_s(response.headers))
    if response.status_code >= 500:
        return processor_unavailable(processor, retry_after_s(response.headers))
    return None


def unknown_host(error: httpx.TransportError) -> bool:
    """Whether the name did not resolve (as opposed to a host that is down or slow)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__ or cause.__context__
    text = str(error).lower()
    return "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text


def json_string(response: httpx.Response, *path: str) -> str | None:
    """A string deep in a JSON error body, or ``None`` when the body is not what was expected."""
    try:
        value: object = response.json()
    except ValueError:
        return None
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) else None
