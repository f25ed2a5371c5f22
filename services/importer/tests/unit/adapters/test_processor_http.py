"""The processor HTTP client's error mapping and retry rules, on scripted answers (httpx MockTransport)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing
from contracts.events import Processor
from contracts.runtime.metrics import REGISTRY
from importer.adapters.processor_http import BearerAuth, ProcessorAccount, ProcessorClient, RetryPolicy
from importer.adapters.rate_budget import RateLimits
from importer.domain.source import SourceError, SourceErrorCode

KEY = "sk_test_51SecretKeyNeverShown000000000000"
URL = "https://api.stripe.test/v1/customers"


class RecordingBudget:
    """A budget that never waits and remembers what it was asked."""

    def __init__(self) -> None:
        self.acquired: list[tuple[str, str, RateLimits | None]] = []
        self.penalties: list[tuple[str, float, str | None]] = []

    async def acquire(self, account_key: str, endpoint: str, *, limits: RateLimits | None = None) -> None:
        self.acquired.append((account_key, endpoint, limits))

    async def penalize(self, account_key: str, retry_after_s: float, *, endpoint: str | None = None) -> None:
        self.penalties.append((account_key, retry_after_s, endpoint))


Answer = httpx.Response | type[Exception]


class Script:
    """Answers requests in order from a list; remembers the requests."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers: Iterator[Answer] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, httpx.Response):
            return answer
        raise answer("scripted failure", request=request)  # type: ignore[call-arg]


class Harness:
    def __init__(
        self,
        answers: list[Answer],
        *,
        processor: Processor = Processor.STRIPE,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.script = Script(answers)
        self.budget = RecordingBudget()
        self.sleeps: list[float] = []
        auth: httpx.Auth = BearerAuth(KEY) if processor is Processor.STRIPE else httpx.BasicAuth(KEY, "")
        self.client = ProcessorClient(
            httpx.AsyncClient(transport=httpx.MockTransport(self.script)),
            ProcessorAccount(processor, "stripe:acct_1:test", RateLimits(25.0, 10.0), auth),
            self.budget,
            headers={"Stripe-Version": "2024-06-20"},
            policy=policy or RetryPolicy(),
            owns_http=True,
            sleep=self.record_sleep,
            jitter=lambda: 1.0,
        )

    async def record_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def get(self) -> Any:
        try:
            return await self.client.get_json(URL, [("limit", "100")], endpoint="customers")
        finally:
            await self.client.aclose()


def ok(body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"data": [], "has_more": False})


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "type": "invalid_request_error"}}, headers=headers
    )


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_success_is_paced_authenticated_and_counted() -> None:
    before = counter(
        "importer_processor_requests_total", processor="stripe", endpoint="customers", status="200"
    )
    harness = Harness([ok({"data": [{"id": "cus_1"}], "has_more": False})])

    body = await harness.get()

    assert body == {"data": [{"id": "cus_1"}], "has_more": False}
    [request] = harness.script.requests
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Stripe-Version"] == "2024-06-20"
    assert request.url.params["limit"] == "100"
    assert harness.budget.acquired == [("stripe:acct_1:test", "customers", RateLimits(25.0, 10.0))]
    assert (
        counter("importer_processor_requests_total", processor="stripe", endpoint="customers", status="200")
        == before + 1
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, SourceErrorCode.KEY_REJECTED),
        (403, SourceErrorCode.INSUFFICIENT_PERMISSIONS),
        (404, SourceErrorCode.SITE_NOT_FOUND),
        (400, SourceErrorCode.INVALID_REQUEST),
        (402, SourceErrorCode.INVALID_REQUEST),
        (409, SourceErrorCode.INVALID_REQUEST),
    ],
)
async def test_client_errors_are_never_retried(status: int, code: SourceErrorCode) -> None:
    harness = Harness([error(status, f"Invalid API Key provided: {KEY}")])

    with pytest.raises(SourceError) as raised:
        await harness.get()

    assert (raised.value.code, raised.value.retryable, raised.value.status) == (code, False, status)
    assert len(harness.script.requests) == 1
    assert KEY not in str(raised.value)  # the processor echoing the key never carries it further
    assert "Invalid API Key provided" in raised.value.message


async def test_a_429_pushes_the_budget_back_by_retry_after_then_retries() -> None:
    harness = Harness(
        [error(429, headers={"Retry-After": "3", "Stripe-Rate-Limited-Reason": "global-rate"}), ok()]
    )

    await harness.get()

    assert harness.budget.penalties == [("stripe:acct_1:test", 3.0, None)]
    assert len(harness.budget.acquired) == 2  # the retry waited for its slot again
    assert harness.sleeps == []  # the wait is the budget's, shared by every replica


async def test_a_retry_after_of_a_year_is_cut_to_the_longest_wait_counted_and_logged() -> None:
    before = counter("importer_processor_retry_after_capped_total", processor="stripe", endpoint="customers")
    harness = Harness([error(429, headers={"Retry-After": "31536000"}), ok()])

    # Captured at structlog itself, whatever another test configured the process's logging to.
    with structlog.testing.capture_logs() as logs:
        await harness.get()

    assert harness.budget.penalties == [("stripe:acct_1:test", RetryPolicy().retry_after_max_s, None)]
    assert (
        counter("importer_processor_retry_after_capped_total", processor="stripe", endpoint="customers")
        == before + 1
    )
    assert [line["event"] for line in logs if line["event"] == "processor_retry_after_capped"] == [
        "processor_retry_after_capped"
    ]


async def test_an_endpoint_rate_limit_penalises_only_the_endpoint() -> None:
    harness = Harness([error(429, headers={"Stripe-Rate-Limited-Reason": "endpoint-rate"}), ok()])

    await harness.get()

    # No Retry-After: the processor's rate window (1 s) instead.
    assert harness.budget.penalties == [("stripe:acct_1:test", 1.0, "customers")]


async def test_429s_past_the_retry_budget_are_a_retryable_rate_limited_error() -> None:
    before = counter(
        "importer_processor_rate_limited_total",
        processor="stripe",
        endpoint="customers",
        reason="unspecified",
    )
    harness = Harness(
        [error(429, headers={"Retry-After": "2"})] * 4, policy=RetryPolicy(rate_limited_retries=3)
    )

    with pytest.raises(SourceError) as raised:
        await harness.get()

    assert (raised.value.code, raised.value.retryable, raised.value.retry_after_s) == (
        SourceErrorCode.RATE_LIMITED,
        True,
        2.0,
    )
    assert len(harness.script.requests) == 4
    assert (
        counter(
            "importer_processor_rate_limited_total",
            processor="stripe",
            endpoint="customers",
            reason="unspecified",
        )
        == before + 4
    )


async def test_stripe_should_retry_false_is_final() -> None:
    limited = Harness([error(429, headers={"Stripe-Should-Retry": "false"})])
    failing = Harness([error(500, headers={"Stripe-Should-Retry": "false"})])

    with pytest.raises(SourceError) as rate_limited:
        await limited.get()
    with pytest.raises(SourceError) as server_error:
        await failing.get()

    assert (rate_limited.value.code, rate_limited.value.retryable) == (SourceErrorCode.RATE_LIMITED, False)
    assert (server_error.value.code, server_error.value.retryable) == (
        SourceErrorCode.PROCESSOR_UNAVAILABLE,
        False,
    )
    assert len(limited.script.requests) == len(failing.script.requests) == 1


async def test_server_errors_and_timeouts_back_off_exponentially_then_succeed() -> None:
    harness = Harness([error(503), httpx.ReadTimeout, httpx.ConnectError, error(502), ok()])

    await harness.get()

    # Full jitter (here the jitter draw is its maximum): 0.5, 1, 2, 4 seconds.
    assert harness.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert len(harness.budget.acquired) == 5


async def test_a_retry_after_on_a_5xx_is_waited_at_least() -> None:
    harness = Harness([error(503, headers={"Retry-After": "7"}), ok()])

    await harness.get()

    assert harness.sleeps == [7.0]


async def test_the_backoff_is_capped_and_bounded() -> None:
    harness = Harness([error(500)] * 6, policy=RetryPolicy(transient_retries=5, backoff_cap_s=3.0))

    with pytest.raises(SourceError) as raised:
        await harness.get()

    assert harness.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert (raised.value.code, raised.value.retryable, raised.value.status) == (
        SourceErrorCode.PROCESSOR_UNAVAILABLE,
        True,
        500,
    )


async def test_a_body_that_is_not_json_is_retried() -> None:
    harness = Harness([httpx.Response(200, text="<html>gateway</html>"), ok()])

    assert await harness.get() == {"data": [], "has_more": False}
    assert len(harness.sleeps) == 1


@pytest.mark.parametrize(
    ("content", "headers", "expected"),
    [
        # What the fast parser refuses, the standard one reads: the body means what it always meant.
        (b'{"data": [{"id": "cus_1", "balance": 18446744073709551616}]}', {}, 18446744073709551616),
        (b'{"data": [{"id": "cus_1", "balance": NaN}]}', {}, "nan"),
        (
            '{"data": [{"id": "cus_1", "balance": 7}]}'.encode("utf-16"),
            {"Content-Type": "application/json; charset=utf-16"},
            7,
        ),
    ],
)
async def test_a_body_json_reads_is_read_as_json_reads_it(
    content: bytes, headers: dict[str, str], expected: object
) -> None:
    harness = Harness([httpx.Response(200, content=content, headers=headers)])

    body = await harness.get()

    balance = body["data"][0]["balance"]
    assert (str(balance) if expected == "nan" else balance) == expected
    assert harness.sleeps == []


async def test_chargebee_uses_basic_auth_with_the_key_as_user() -> None:
    harness = Harness([ok({"list": []})], processor=Processor.CHARGEBEE)

    await harness.get()

    [request] = harness.script.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()


def test_retry_policy_defaults_are_bounded() -> None:
    policy = RetryPolicy()
    worst_transient_wait = sum(
        min(policy.backoff_cap_s, policy.backoff_base_s * 2**n) for n in range(policy.transient_retries)
    )
    assert worst_transient_wait <= 30
    assert policy.rate_limited_retries < 20
