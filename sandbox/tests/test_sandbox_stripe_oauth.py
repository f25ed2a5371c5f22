"""Stripe Connect OAuth against the fake: consent page, code exchange once, deny, refresh."""

from __future__ import annotations

import urllib.parse

import pytest
from sandbox.server import BackgroundServer
from sandbox_kit import Http

from sandbox import (
    SAMPLE_STRIPE_ACCOUNT_ID,
    SAMPLE_STRIPE_CLIENT_ID,
    SAMPLE_STRIPE_OTHER_ACCOUNT_ID,
    SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
    SandboxHTTPError,
    authorize_without_browser,
)

REDIRECT = "http://localhost:8000/v1/oauth/stripe/callback"


def authorize_url(base: str, *, client_id: str = SAMPLE_STRIPE_CLIENT_ID, state: str = "st_123") -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "scope": "read_write",
            "state": state,
            "redirect_uri": REDIRECT,
        }
    )
    return f"{base}/oauth/authorize?{query}"


def query_of(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT + "?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def test_consent_page_is_a_plain_accessible_form(stripe_api: Http, stripe_server: BackgroundServer) -> None:
    path = authorize_url("").removeprefix("")
    reply = stripe_api.get(path)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.text
    assert '<html lang="en">' in page
    assert "Sandbox Stripe — Authorize" in page
    assert 'method="post"' in page
    assert 'value="authorize"' in page
    assert 'value="deny"' in page
    assert "<script" not in page
    assert f'value="{SAMPLE_STRIPE_ACCOUNT_ID}" checked' in page
    assert SAMPLE_STRIPE_OTHER_ACCOUNT_ID in page


def test_wrong_client_id_is_a_400_page(stripe_api: Http) -> None:
    reply = stripe_api.get(authorize_url("", client_id="ca_wrong"))
    assert reply.status == 400
    assert "client_id" in reply.text


def exchange(
    api: Http, code: str, secret: str = SAMPLE_STRIPE_PLATFORM_SECRET_KEY
) -> tuple[int, dict[str, str]]:
    reply = api.request(
        "POST",
        "/oauth/token",
        form={"grant_type": "authorization_code", "code": code, "client_secret": secret},
    )
    return reply.status, reply.body


def test_authorize_then_exchange_the_code_once(stripe_api: Http, stripe_server: BackgroundServer) -> None:
    location = authorize_without_browser(authorize_url(stripe_server.url))
    params = query_of(location)
    assert params["state"] == "st_123"
    assert params["code"].startswith("ac_")

    status, token = exchange(stripe_api, params["code"])

    assert status == 200
    assert token["access_token"].startswith("sk_test_")
    assert token["refresh_token"].startswith("rt_")
    assert token["stripe_publishable_key"].startswith("pk_test_")
    assert token | {"access_token": "", "refresh_token": "", "stripe_publishable_key": ""} == {
        "access_token": "",
        "livemode": False,
        "refresh_token": "",
        "token_type": "bearer",
        "stripe_publishable_key": "",
        "stripe_user_id": SAMPLE_STRIPE_ACCOUNT_ID,
        "scope": "read_write",
    }
    account = stripe_api.get("/v1/account", bearer=token["access_token"]).body
    assert account["id"] == SAMPLE_STRIPE_ACCOUNT_ID
    on_behalf = stripe_api.get(
        "/v1/account",
        bearer=SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        headers={"Stripe-Account": SAMPLE_STRIPE_ACCOUNT_ID},
    )
    assert on_behalf.body["id"] == SAMPLE_STRIPE_ACCOUNT_ID

    status, again = exchange(stripe_api, params["code"])

    assert status == 400
    assert again["error"] == "invalid_grant"
    assert stripe_api.get("/v1/account", bearer=token["access_token"]).status == 401  # revoked on reuse


def test_choosing_another_account(stripe_server: BackgroundServer, stripe_api: Http) -> None:
    location = authorize_without_browser(
        authorize_url(stripe_server.url), account=SAMPLE_STRIPE_OTHER_ACCOUNT_ID
    )
    status, token = exchange(stripe_api, query_of(location)["code"])
    assert status == 200
    assert token["stripe_user_id"] == SAMPLE_STRIPE_OTHER_ACCOUNT_ID


def test_deny_redirects_with_access_denied(stripe_server: BackgroundServer) -> None:
    location = authorize_without_browser(authorize_url(stripe_server.url, state="st_deny"), decision="deny")
    params = query_of(location)
    assert params["error"] == "access_denied"
    assert params["state"] == "st_deny"
    assert params["error_description"]
    assert "code" not in params


def test_unknown_code_and_wrong_secret(stripe_api: Http, stripe_server: BackgroundServer) -> None:
    status, body = exchange(stripe_api, "ac_never_issued")
    assert (status, body["error"]) == (400, "invalid_grant")
    code = query_of(authorize_without_browser(authorize_url(stripe_server.url)))["code"]
    status, body = exchange(stripe_api, code, secret="sk_test_NotThePlatformSecret000000000")
    assert (status, body["error"]) == (401, "invalid_client")
    assert "NotThePlatformSecret" not in str(body)
    status, _ = exchange(stripe_api, code)  # the code was not burnt by the failed attempt
    assert status == 200


def test_bearer_auth_and_refresh_token(stripe_api: Http, stripe_server: BackgroundServer) -> None:
    code = query_of(authorize_without_browser(authorize_url(stripe_server.url)))["code"]
    reply = stripe_api.request(
        "POST",
        "/oauth/token",
        bearer=SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        form={"grant_type": "authorization_code", "code": code},
    )
    assert reply.status == 200
    refreshed = stripe_api.request(
        "POST",
        "/oauth/token",
        bearer=SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        form={"grant_type": "refresh_token", "refresh_token": reply.body["refresh_token"]},
    )
    assert refreshed.status == 200
    assert refreshed.body["access_token"] != reply.body["access_token"]
    assert stripe_api.get("/v1/customers", bearer=refreshed.body["access_token"]).status == 200


def test_helper_reports_a_bad_authorize_url(stripe_server: BackgroundServer) -> None:
    with pytest.raises(SandboxHTTPError) as raised:
        authorize_without_browser(authorize_url(stripe_server.url, client_id="ca_nope"))
    assert raised.value.status == 400
