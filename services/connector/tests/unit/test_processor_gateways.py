"""How Stripe's and Chargebee's HTTP answers become refusals (over httpx.MockTransport)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest
from connector.adapters.chargebee_api import ChargebeeHttpGateway
from connector.adapters.processor_http import retry_after_s
from connector.adapters.stripe_api import StripeHttpGateway
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite, StripeApiKey
from connector.domain.oauth import GrantRevocationDeferred
from connector.domain.refusals import ConnectionRefused, RefusalCode
from pydantic import SecretStr

Handler = Callable[[httpx.Request], httpx.Response]
STRIPE_KEY = StripeApiKey.parse("sk_test_51GatewayKey000000000000")
RESTRICTED_KEY = StripeApiKey.parse("rk_test_51GatewayKey000000000000")
SITE = ChargebeeSite.parse("acme-test")
CB_KEY = ChargebeeApiKey.parse("test_GatewayKey000000000000")


def stripe(
    handler: Handler, platform_key: str | None = "sk_test_platform000000", client_id: str | None = "ca_test1"
) -> StripeHttpGateway:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return StripeHttpGateway(
        client,
        api_base="https://api.stripe.test",
        connect_base="https://connect.stripe.test",
        platform_secret_key=None if platform_key is None else SecretStr(platform_key),
        client_id=client_id,
    )


def chargebee(
    handler: Handler, template: str = "https://{site}.chargebee.test/api/v2"
) -> ChargebeeHttpGateway:
    return ChargebeeHttpGateway(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), url_template=template
    )


async def refusal_of(call: object) -> ConnectionRefused:
    with pytest.raises(ConnectionRefused) as refused:
        await call  # type: ignore[misc]
    return refused.value


async def test_stripe_account_of_a_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "acct_123", "object": "account"})

    assert await stripe(handler).account_of(STRIPE_KEY) == "acct_123"
    assert str(seen[0].url) == "https://api.stripe.test/v1/account"
    assert seen[0].headers["authorization"] == f"Bearer {STRIPE_KEY.reveal()}"


@pytest.mark.parametrize(
    ("status", "headers", "code", "retry_after"),
    [
        (401, {}, RefusalCode.KEY_REJECTED, None),
        (403, {}, RefusalCode.INSUFFICIENT_PERMISSIONS, None),
        (429, {"Retry-After": "7"}, RefusalCode.RATE_LIMITED, 7),
        (429, {}, RefusalCode.RATE_LIMITED, None),
        (500, {}, RefusalCode.PROCESSOR_UNAVAILABLE, None),
        (503, {"Retry-After": "120"}, RefusalCode.PROCESSOR_UNAVAILABLE, 120),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, RefusalCode.PROCESSOR_UNAVAILABLE, 1),
    ],
)
async def test_stripe_answers_become_refusals(
    status: int, headers: dict[str, str], code: RefusalCode, retry_after: int | None
) -> None:
    body = {"error": {"message": f"Invalid API Key provided: {STRIPE_KEY.reveal()[:12]}****"}}
    gateway = stripe(lambda _: httpx.Response(status, json=body, headers=headers))

    refusal = await refusal_of(gateway.account_of(STRIPE_KEY))

    assert (refusal.code, refusal.retry_after_s) == (code, retry_after)
    assert "****" not in refusal.message  # the processor's own words never reach the person


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (httpx.Headers({"Retry-After": "7"}), 7),
        ({"retry-after": "2.5"}, 3),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1),
        ({"Retry-After": "86400"}, 3600),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_is_read_alike_from_http_answers_and_sdk_errors(
    headers: dict[str, str] | httpx.Headers | None, expected: int | None
) -> None:
    """The gateways' answers (httpx headers) and the Stripe SDK's errors (a plain mapping, in either
    case) give one ``Retry-After`` reading: whole seconds from seconds or an HTTP date, 1 to 3600."""
    assert retry_after_s(headers) == expected


async def test_stripe_timeouts_and_unreachable_hosts_are_unavailability() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert (await refusal_of(stripe(slow).account_of(STRIPE_KEY))).code is RefusalCode.PROCESSOR_UNAVAILABLE
    assert (await refusal_of(stripe(down).account_of(STRIPE_KEY))).code is RefusalCode.PROCESSOR_UNAVAILABLE


async def test_a_restricted_key_is_tried_on_each_resource() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in ("/v1/invoices", "/v1/prices"):
            return httpx.Response(403, json={"error": {"type": "invalid_request_error"}})
        assert request.url.params["limit"] == "1"
        return httpx.Response(200, json={"object": "list", "data": []})

    missing = await stripe(handler).unreadable_resources(
        RESTRICTED_KEY, ["customers", "subscriptions", "invoices", "coupons", "prices"]
    )

    assert missing == ["invoices", "prices"]


async def test_the_code_exchange_uses_the_platform_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "stripe_user_id": "acct_9",
                "access_token": "sk_test_tok00000",
                "refresh_token": "rt_test_x0000000",
            },
        )

    authorization = await stripe(handler).exchange_code("ac_code")

    assert authorization.stripe_user_id == "acct_9"
    assert "sk_test_tok" not in repr(authorization)
    assert str(seen[0].url) == "https://connect.stripe.test/oauth/token"
    assert b"code=ac_code" in seen[0].content
    assert b"grant_type=authorization_code" in seen[0].content
    assert seen[0].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, RefusalCode.AUTHORIZATION_FAILED),
        (401, RefusalCode.STRIPE_CONNECT_UNAVAILABLE),
        (429, RefusalCode.RATE_LIMITED),
        (502, RefusalCode.PROCESSOR_UNAVAILABLE),
    ],
)
async def test_code_exchange_failures(status: int, code: RefusalCode) -> None:
    gateway = stripe(lambda _: httpx.Response(status, json={"error": "invalid_grant"}))
    assert (await refusal_of(gateway.exchange_code("ac_code"))).code is code


async def test_no_exchange_without_a_platform_key() -> None:
    gateway = stripe(lambda _: httpx.Response(200), platform_key=None)
    assert (await refusal_of(gateway.exchange_code("c"))).code is RefusalCode.STRIPE_CONNECT_UNAVAILABLE


async def test_chargebee_calls_go_to_the_validated_site_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"list": []})

    gateway = chargebee(handler)
    await gateway.check_access(SITE, CB_KEY)
    assert await gateway.product_catalog(SITE, CB_KEY) == "2.0"

    assert {request.url.host for request in seen} == {"acme-test.chargebee.test"}
    assert seen[0].url.path == "/api/v2/customers"
    assert seen[0].url.params["limit"] == "1"
    assert seen[0].headers["authorization"].startswith("Basic ")


async def test_product_catalog_1_is_recognised() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/item_prices"):
            return httpx.Response(
                400,
                json={
                    "api_error_code": "configuration_incompatible",
                    "type": "invalid_request",
                    "http_status_code": 400,
                },
            )
        return httpx.Response(200, json={"list": []})

    assert await chargebee(handler).product_catalog(SITE, CB_KEY) == "1.0"


async def test_chargebee_resources_the_key_may_not_read_are_named() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/invoices"):
            return httpx.Response(403, json={"api_error_code": "api_authorization_failed"})
        return httpx.Response(200, json={"list": []})

    refusal = await refusal_of(chargebee(handler).product_catalog(SITE, CB_KEY))

    assert refusal.code is RefusalCode.INSUFFICIENT_PERMISSIONS
    assert refusal.missing_permissions == ("invoices",)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, RefusalCode.KEY_REJECTED),
        (403, RefusalCode.SITE_BLOCKED),
        (404, RefusalCode.SITE_NOT_FOUND),
        (429, RefusalCode.RATE_LIMITED),
        (500, RefusalCode.PROCESSOR_UNAVAILABLE),
    ],
)
async def test_chargebee_answers_become_refusals(status: int, code: RefusalCode) -> None:
    gateway = chargebee(lambda _: httpx.Response(status, json={"message": "m"}, headers={"Retry-After": "3"}))

    refusal = await refusal_of(gateway.check_access(SITE, CB_KEY))

    assert refusal.code is code
    if code in (RefusalCode.RATE_LIMITED, RefusalCode.PROCESSOR_UNAVAILABLE):
        assert refusal.retry_after_s == 3


async def test_an_unknown_host_is_an_unknown_site_and_a_dead_one_is_unavailable() -> None:
    def unknown(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(
            "[Errno -2] Name or service not known", request=request
        ) from socket.gaierror(-2, "x")

    def dead(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    assert (
        await refusal_of(chargebee(unknown).check_access(SITE, CB_KEY))
    ).code is RefusalCode.SITE_NOT_FOUND
    assert (
        await refusal_of(chargebee(dead).check_access(SITE, CB_KEY))
    ).code is RefusalCode.PROCESSOR_UNAVAILABLE


def test_a_template_without_exactly_one_site_is_refused() -> None:
    for template in ("https://chargebee.test/api/v2", "https://{site}.{site}.test"):
        with pytest.raises(ValueError, match="site"):
            chargebee(lambda _: httpx.Response(200), template=template)


async def test_revoking_a_grant_posts_the_client_and_account_with_the_platform_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"stripe_user_id": "acct_9"})

    assert await stripe(handler).deauthorize("acct_9") is True
    assert str(seen[0].url) == "https://connect.stripe.test/oauth/deauthorize"
    assert seen[0].method == "POST"
    assert sorted(seen[0].content.split(b"&")) == [b"client_id=ca_test1", b"stripe_user_id=acct_9"]
    assert seen[0].headers["authorization"].startswith("Basic ")


async def test_a_grant_stripe_no_longer_knows_is_revoked_already() -> None:
    body = {"error": "invalid_client", "error_description": "No such connection: acct_9"}
    assert await stripe(lambda _: httpx.Response(400, json=body)).deauthorize("acct_9") is False


@pytest.mark.parametrize("status", [401, 429, 500, 503])
async def test_a_revocation_stripe_cannot_take_now_is_deferred(status: int) -> None:
    with pytest.raises(GrantRevocationDeferred, match=str(status)):
        await stripe(lambda _: httpx.Response(status, json={})).deauthorize("acct_9")


async def test_a_revocation_while_stripe_is_unreachable_is_deferred() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(GrantRevocationDeferred):
        await stripe(handler).deauthorize("acct_9")


@pytest.mark.parametrize(
    ("platform_key", "client_id"), [(None, "ca_test1"), ("sk_test_platform000000", None)]
)
async def test_no_revocation_without_the_platform_credentials(
    platform_key: str | None, client_id: str | None
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    gateway = stripe(handler, platform_key, client_id)

    with pytest.raises(GrantRevocationDeferred):
        await gateway.deauthorize("acct_9")
    assert calls == []
