"""The HTTP client both processor sources share: pacing, retries, error mapping, metrics.

Neither processor SDK fits: stripe-python and chargebee-python ignore ``Retry-After`` and do not
retry 429s, and chargebee-python builds its URLs from the site name, so it cannot target the
configurable ``CHARGEBEE_API_URL_TEMPLATE`` cleanly. The sources need the exact API JSON anyway, so a
thin httpx client it is: one shared ``httpx.AsyncClient`` (connection pooling, keep-alive) with
timeouts.

Every attempt first waits for its slot in the account's :class:`RateBudget`, at the account's
learned limit when it has one (Chargebee: :mod:`importer.adapters.learned_limits`). A 429 pushes
the account's (or, for a Stripe endpoint limit, the endpoint's) budget back by ``Retry-After``
(with a learned limit, at least until the site's window has room again) for every replica, then
retries, within a bounded number of attempts and total wait. 5xx answers,
timeouts and connection failures back off exponentially with full jitter, bounded. Any other 4xx
is never retried: it becomes a :class:`SourceError` the user sees. ``Stripe-Should-Retry: false``
is honoured. No key ever reaches a log line or an error message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson
from contracts.events import Processor
from contracts.runtime.backoff import retry_after_s
from contracts.runtime.logging import get_logger, redact_text
from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter, Histogram

from importer.adapters.learned_limits import AccountPace
from importer.adapters.rate_budget import RateBudget, RateLimits
from importer.domain.source import SourceError, SourceErrorCode

log = get_logger(__name__)

REQUEST_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0, pool=60.0)
#: Enough sockets for every request in flight across the importer's workers to keep its own.
MAX_CONNECTIONS: Final = 256
MAX_KEEPALIVE_CONNECTIONS: Final = 128
KEEPALIVE_EXPIRY_S: Final = 30.0

PROCESSOR_REQUESTS: Final = Counter(
    "importer_processor_requests_total",
    "HTTP requests sent to payment processors, by outcome (status code, timeout, connection_error)",
    ["processor", "endpoint", "status"],
    registry=REGISTRY,
)
PROCESSOR_RATE_LIMITED: Final = Counter(
    "importer_processor_rate_limited_total",
    "429 answers from payment processors, by the reason the processor gave",
    ["processor", "endpoint", "reason"],
    registry=REGISTRY,
)
PROCESSOR_RETRIES: Final = Counter(
    "importer_processor_retries_total",
    "Requests to payment processors sent again, by cause",
    ["processor", "endpoint", "cause"],
    registry=REGISTRY,
)
PROCESSOR_RETRY_AFTER_CAPPED: Final = Counter(
    "importer_processor_retry_after_capped_total",
    "Retry-After answers longer than the importer waits (RETRY_AFTER_MAX_S), cut down to it",
    ["processor", "endpoint"],
    registry=REGISTRY,
)
PROCESSOR_REQUEST_SECONDS: Final = Histogram(
    "importer_processor_request_duration_seconds",
    "Time from sending a request to a payment processor to its answer",
    ["processor", "endpoint"],
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RATE_BUDGET_WAIT_SECONDS: Final = Histogram(
    "importer_rate_budget_wait_seconds",
    "Time a request waited for its slot in the account's rate budget",
    ["processor"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0),
)


def new_http_client() -> httpx.AsyncClient:
    """The client to share between all sources of a process (create once, close at shutdown)."""
    return httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT,
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        ),
        follow_redirects=False,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a page may keep trying before its failure goes back to the pipeline."""

    #: 429s: attempts after the first, and the longest total time spent waiting them out.
    rate_limited_retries: int = 8
    rate_limited_wait_s: float = 180.0
    #: The wait after a 429 without ``Retry-After``: the processor's rate window.
    rate_limit_window_s: float = 1.0
    #: The longest ``Retry-After`` taken: it goes into the account's shared budget, so one answer
    #: asking for a year must not stall the account for a year (longer ones are cut, counted, logged).
    retry_after_max_s: float = 120.0
    #: 5xx, timeouts, connection failures: attempts after the first, full-jitter backoff bounds.
    transient_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0


@dataclass(frozen=True, slots=True)
class ProcessorAccount:
    """Who is being read: the budget's account key and limits, and how requests authenticate."""

    processor: Processor
    account_key: str
    limits: RateLimits
    auth: httpx.Auth
    #: Which of the connection's credentials ``auth`` holds (``StoredConnection.credentials_version``).
    credentials_version: int = 0


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <key>``, added to the request only (never to a URL or a log)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


class ProcessorClient:
    """GETs JSON from one processor account with pacing, retries and mapped errors."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        account: ProcessorAccount,
        budget: RateBudget,
        *,
        headers: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        owns_http: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        pace: AccountPace | None = None,
    ) -> None:
        """``pace``: the account's learned limit, which then replaces ``account.limits``."""
        self.account = account
        self._pace = pace
        self.policy = policy or RetryPolicy()
        self._http = http
        self._budget = budget
        self._headers = dict(headers or {})
        self._owns_http = owns_http
        self._sleep = sleep
        self._jitter = jitter

    @property
    def processor(self) -> Processor:
        return self.account.processor

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def get_json(
        self,
        url: str,
        params: Sequence[tuple[str, str]],
        *,
        endpoint: str,
        decode: Callable[[bytes], Mapping[str, Any] | None] | None = None,
    ) -> Mapping[str, Any]:
        """The JSON object at ``url``; raises :class:`SourceError` once retrying is pointless.

        ``decode``: reads the body first (e.g. only some fields, ``stripe_pages``); where it answers
        ``None`` the body is parsed whole."""
        processor = self.processor.value
        rate_limited = transient = 0
        rate_limited_wait_s = 0.0
        while True:
            await self._wait_for_budget(endpoint)
            started = time.perf_counter()
            response: httpx.Response | None = None
            try:
                response = await self._http.get(
                    url, params=httpx.QueryParams(list(params)), headers=self._headers, auth=self.account.auth
                )
                outcome = str(response.status_code)
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.TransportError:
                outcome = "connection_error"
            PROCESSOR_REQUESTS.labels(processor, endpoint, outcome).inc()
            PROCESSOR_REQUEST_SECONDS.labels(processor, endpoint).observe(time.perf_counter() - started)
            if self._pace is not None and response is not None and response.status_code != 429:
                await self._pace.accepted()

            if response is not None and response.is_success:
                body = (decode(response.content) if decode is not None else None) or _json_object(response)
                if body is not None:
                    return body
                outcome = "invalid_json"
            elif response is not None and response.status_code == 429:
                wait_s = await self._after_rate_limit(response, endpoint)
                rate_limited += 1
                rate_limited_wait_s += wait_s
                if (
                    rate_limited > self.policy.rate_limited_retries
                    or rate_limited_wait_s > self.policy.rate_limited_wait_s
                ):
                    raise SourceError(
                        SourceErrorCode.RATE_LIMITED,
                        f"{processor} kept answering 429 to {endpoint} after {rate_limited} attempts",
                        retryable=True,
                        retry_after_s=wait_s,
                        status=429,
                    )
                PROCESSOR_RETRIES.labels(processor, endpoint, "rate_limited").inc()
                continue
            elif response is not None and response.status_code < 500:
                raise _client_error(self.processor, endpoint, response, self.account.credentials_version)

            # 5xx, a timeout, a broken connection, or a 2xx that is not JSON: worth another try.
            if response is not None and response.headers.get("Stripe-Should-Retry") == "false":
                raise SourceError(
                    SourceErrorCode.PROCESSOR_UNAVAILABLE,
                    f"{processor} answered {outcome} to {endpoint} and said not to retry",
                    retryable=False,
                    status=response.status_code,
                )
            if transient >= self.policy.transient_retries:
                raise SourceError(
                    SourceErrorCode.PROCESSOR_UNAVAILABLE,
                    f"{processor} answered {outcome} to {endpoint} {transient + 1} times",
                    retryable=True,
                    retry_after_s=None if response is None else self._retry_after_s(response, endpoint),
                    status=None if response is None else response.status_code,
                )
            backoff_s = self._jitter() * min(
                self.policy.backoff_cap_s, self.policy.backoff_base_s * 2**transient
            )
            if response is not None:
                backoff_s = max(backoff_s, self._retry_after_s(response, endpoint) or 0.0)
            transient += 1
            PROCESSOR_RETRIES.labels(processor, endpoint, _cause(outcome)).inc()
            log.warning(
                "processor_request_retry",
                processor=processor,
                endpoint=endpoint,
                account=self.account.account_key,
                outcome=outcome,
                attempt=transient,
                backoff_s=round(backoff_s, 3),
            )
            await self._sleep(backoff_s)

    def _retry_after_s(self, response: httpx.Response, endpoint: str) -> float | None:
        """``Retry-After`` in seconds, at most ``retry_after_max_s``."""
        asked_s = retry_after_s(response.headers.get("Retry-After"))
        if asked_s is None or asked_s <= self.policy.retry_after_max_s:
            return asked_s
        PROCESSOR_RETRY_AFTER_CAPPED.labels(self.processor.value, endpoint).inc()
        log.warning(
            "processor_retry_after_capped",
            processor=self.processor.value,
            endpoint=endpoint,
            account=self.account.account_key,
            retry_after_s=asked_s,
            capped_to_s=self.policy.retry_after_max_s,
        )
        return self.policy.retry_after_max_s

    async def _limits(self) -> RateLimits:
        return await self._pace.limits() if self._pace is not None else self.account.limits

    async def _wait_for_budget(self, endpoint: str) -> None:
        limits = await self._limits()
        started = time.perf_counter()
        await self._budget.acquire(self.account.account_key, endpoint, limits=limits)
        waited_s = time.perf_counter() - started
        RATE_BUDGET_WAIT_SECONDS.labels(self.processor.value).observe(waited_s)
        if self._pace is not None:
            self._pace.waited(waited_s, limits)

    async def _after_rate_limit(self, response: httpx.Response, endpoint: str) -> float:
        """Push the shared budget back after a 429; the wait it imposes, in seconds."""
        processor = self.processor.value
        reason = response.headers.get("Stripe-Rate-Limited-Reason") or "unspecified"
        PROCESSOR_RATE_LIMITED.labels(processor, endpoint, reason).inc()
        if response.headers.get("Stripe-Should-Retry") == "false":
            raise SourceError(
                SourceErrorCode.RATE_LIMITED,
                f"{processor} rate-limited {endpoint} and said not to retry",
                retryable=False,
                status=429,
            )
        retry_after_s = self._retry_after_s(response, endpoint)
        wait_s = self.policy.rate_limit_window_s if retry_after_s is None else retry_after_s
        if self._pace is not None:
            # Until the site's window has room at the learned pace (without Retry-After, that
            # instead of a whole window; none known, the window).
            resume_s = min(await self._pace.refused(), self.policy.retry_after_max_s)
            if retry_after_s is not None:
                wait_s = max(retry_after_s, resume_s)
            elif resume_s > 0:
                wait_s = resume_s
        wait_s = max(wait_s, 1.0 / (await self._limits()).per_s)
        # Stripe names the limiter; an endpoint's own limit must not stall the account's other endpoints.
        only_endpoint = endpoint if reason.startswith("endpoint") else None
        await self._budget.penalize(self.account.account_key, wait_s, endpoint=only_endpoint)
        log.warning(
            "processor_rate_limited",
            processor=processor,
            endpoint=endpoint,
            account=self.account.account_key,
            reason=reason,
            retry_after_s=wait_s,
        )
        return wait_s


def _json_object(response: httpx.Response) -> Mapping[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        # What orjson refuses and json reads (NaN, integers beyond 64 bits, UTF-16) reads as before.
        try:
            body = response.json()
        except ValueError:
            return None
    return body if isinstance(body, Mapping) else None


def _cause(outcome: str) -> str:
    if outcome in {"timeout", "connection_error", "invalid_json"}:
        return outcome
    return "server_error"


_CLIENT_ERROR_CODES: Final = {
    401: SourceErrorCode.KEY_REJECTED,
    403: SourceErrorCode.INSUFFICIENT_PERMISSIONS,
    404: SourceErrorCode.SITE_NOT_FOUND,
}


def _client_error(
    processor: Processor, endpoint: str, response: httpx.Response, credentials_version: int
) -> SourceError:
    code = _CLIENT_ERROR_CODES.get(response.status_code, SourceErrorCode.INVALID_REQUEST)
    detail = _processor_message(response)
    message = f"{processor.value} answered {response.status_code} to {endpoint}"
    return SourceError(
        code,
        f"{message}: {detail}" if detail else message,
        retryable=False,
        status=response.status_code,
        credentials_version=credentials_version,
    )


def _processor_message(response: httpx.Response) -> str | None:
    """The processor's own explanation (Stripe ``error.message``, Chargebee ``message``), redacted."""
    body = _json_object(response)
    if body is None:
        return None
    error = body.get("error")
    found = error.get("message") if isinstance(error, Mapping) else body.get("message")
    if not isinstance(found, str) or not found:
        return None
    return redact_text(found)[:300]
