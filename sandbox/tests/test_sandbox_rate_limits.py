"""Rate limits: token buckets refuse bursts above the rate, never a client pacing below it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sandbox.ratelimit import RateLimiter, SlidingWindowLimit, TokenBucket
from sandbox.server import BackgroundServer
from sandbox_kit import Http, Reply

from sandbox import (
    SAMPLE_CHARGEBEE_KEY,
    SAMPLE_CHARGEBEE_SITE,
    SAMPLE_STRIPE_KEY,
    RateLimit,
    SandboxAdmin,
    StripeRateLimits,
    create_chargebee_app,
    create_stripe_app,
    live_stripe_key,
    serve_in_thread,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_exact_pacing_and_refuses_bursts() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)
    for _ in range(10):
        assert bucket.available()
        bucket.take()
    assert not bucket.available()
    assert bucket.seconds_until_available() == pytest.approx(0.1)
    for _ in range(1000):  # a client pacing exactly at the limit never waits
        clock.now += 0.1
        assert bucket.available()
        bucket.take()


def test_sliding_window_counts_accepted_requests_of_the_past_window() -> None:
    clock = FakeClock()
    limit = SlidingWindowLimit(3, 60.0, clock=clock)
    for _ in range(3):
        assert limit.admit() is None
        clock.now += 5.0
    clock.now += 5.0
    assert limit.admit() == pytest.approx(40.0)  # refused until the first leaves the window
    clock.now += 39.0
    assert limit.admit() == pytest.approx(1.0)  # refusals do not count, nor do they extend the wait
    clock.now += 1.0
    assert limit.admit() is None
    assert limit.admit() is not None  # the other two are still in the window


def test_sliding_window_allows_a_whole_limit_at_once_but_not_more_in_any_window() -> None:
    clock = FakeClock()
    limit = SlidingWindowLimit(100, 60.0, clock=clock)
    accepted: list[float] = []
    for _ in range(2400):  # 4 requests a second for 10 minutes, 2.4 times the limit
        if limit.admit() is None:
            accepted.append(clock.now)
        clock.now += 0.25
    assert len(accepted) == 1000  # 100 a minute
    assert all(later - earlier >= 60.0 for earlier, later in zip(accepted, accepted[100:], strict=False))


def test_limiter_keeps_one_bucket_per_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, per_s=60.0, clock=clock)
    assert limiter.bucket("a") is limiter.bucket("a")
    assert limiter.bucket("a") is not limiter.bucket("b")
    assert limiter.bucket("a").rate == pytest.approx(1.0)


@pytest.fixture
def limited_stripe() -> Iterator[BackgroundServer]:
    limits = StripeRateLimits(
        live=RateLimit(global_per_s=100, endpoint_per_s=4),
        test=RateLimit(global_per_s=6, endpoint_per_s=None),
        retry_after_s=2,
    )
    server = serve_in_thread(create_stripe_app(rate_limits=limits))
    yield server
    server.stop()


def burst(api: Http, path: str, key: str, n: int) -> list[Reply]:
    return [api.get(path, bearer=key, params={"limit": 1}) for _ in range(n)]


def test_stripe_answers_429_with_headers_when_the_endpoint_rate_is_exceeded(
    limited_stripe: BackgroundServer,
) -> None:
    api = Http(limited_stripe.url)
    replies = burst(api, "/v1/customers", live_stripe_key(), 14)
    assert [r.status for r in replies[:4]] == [200] * 4
    refused = [r for r in replies if r.status == 429]
    assert len(refused) >= 5

    reply = refused[0]
    assert reply.body["error"]["type"] == "invalid_request_error"
    assert reply.body["error"]["code"] == "rate_limit"
    assert reply.headers["Stripe-Should-Retry"] == "true"
    assert reply.headers["Retry-After"] == "2"
    assert reply.headers["Stripe-Rate-Limited-Reason"] == "endpoint-rate"
    assert api.get("/v1/invoices", bearer=live_stripe_key()).status == 200  # another endpoint is fine


def test_stripe_global_rate_in_test_mode(limited_stripe: BackgroundServer) -> None:
    api = Http(limited_stripe.url)
    replies = burst(api, "/v1/customers", SAMPLE_STRIPE_KEY, 7) + burst(
        api, "/v1/invoices", SAMPLE_STRIPE_KEY, 7
    )
    refused = [r for r in replies if r.status == 429]
    assert len(refused) >= 4
    assert {r.headers["Stripe-Rate-Limited-Reason"] for r in refused} == {"global-rate"}
    stats = api.get("/_sandbox/stats").body
    assert stats["rate_limited"] == len(refused)
    assert stats["rate_limited_by_reason"] == {"global-rate": len(refused)}
    assert stats["by_endpoint_status"]["GET /v1/customers"]["200"] >= 6


def test_stripe_client_pacing_below_the_limit_is_never_refused(limited_stripe: BackgroundServer) -> None:
    api = Http(limited_stripe.url)
    interval = 1 / 5  # test mode allows 6/s
    deadline = time.monotonic()
    statuses = []
    for _ in range(12):
        deadline += interval
        statuses.append(api.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY, params={"limit": 1}).status)
        time.sleep(max(0.0, deadline - time.monotonic()))
    assert statuses == [200] * 12


def test_chargebee_per_minute_limit() -> None:
    server = serve_in_thread(create_chargebee_app())
    try:
        SandboxAdmin(server.url).update_settings(rate_limits_per_min={SAMPLE_CHARGEBEE_SITE: 5})
        api = Http(server.url)
        path = f"/sites/{SAMPLE_CHARGEBEE_SITE}/api/v2/customers"
        statuses = [api.get(path, basic=SAMPLE_CHARGEBEE_KEY).status for _ in range(7)]
        assert statuses[:5] == [200] * 5
        assert statuses[5:] == [429, 429]
        reply = api.get(path, basic=SAMPLE_CHARGEBEE_KEY)
        assert reply.body["api_error_code"] == "api_request_limit_exceeded"
        assert reply.body["http_status_code"] == 429
        assert 55 <= int(reply.headers["Retry-After"]) <= 60  # until the first leaves the past minute
    finally:
        server.stop()
