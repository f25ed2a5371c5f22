"""``return_url`` may only send the browser back to hosts we trust (SPEC "Connection lifecycle")."""

from __future__ import annotations

import pytest
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.domain.return_url import ReturnUrlPolicy
from connector.settings import ConnectorSettings
from connector_fakes import new_fernet_key

POLICY = ReturnUrlPolicy.of(["app.example", "localhost", "127.0.0.1"])


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example/onboarding?step=3#done",
        "https://APP.example:8443/x",
        "http://localhost:3000/back",
        "http://127.0.0.1/back",
        "https://localhost/back",
    ],
)
def test_an_https_url_on_an_allowed_host_or_local_http_is_kept(url: str) -> None:
    assert POLICY.check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example/back",  # plain http off the local machine
        "https://evil.example/back",
        "https://app.example.evil.example/",
        "https://evil.example/?https://app.example/",
        "https://user@app.example/",  # credentials in a redirect target
        "https://app.example@evil.example/",
        "https://evil.example\\@app.example/",
        "https://app.example:99999/",
        "https://app.example/\nLocation: https://evil.example",
        "https:///app.example",
        "//app.example/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "ftp://app.example/",
        "app.example/back",
        "",
        "https://app.example/" + "a" * 2100,
    ],
)
def test_anything_else_is_invalid_return_url(url: str) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        POLICY.check(url)
    assert refused.value.code is RefusalCode.INVALID_RETURN_URL
    assert url[:30] not in refused.value.message or not url


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConnectorSettings:
    monkeypatch.setenv("API_JWT_SECRET", "s" * 40)
    monkeypatch.setenv("CREDENTIALS_KEYS", new_fernet_key())
    for name in ("PUBLIC_BASE_URL", "APP_BASE_URL", "RETURN_URL_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ConnectorSettings()


def test_by_default_the_hosts_of_both_base_urls_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(
        monkeypatch,
        PUBLIC_BASE_URL="https://connect.acme.example",
        APP_BASE_URL="https://app.acme.example/home",
    )

    policy = settings.return_url_policy()
    assert policy.hosts == {"connect.acme.example", "app.acme.example"}
    assert settings_with(monkeypatch).return_url_policy().hosts == {"localhost"}


def test_our_own_pages_are_allowed_whatever_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = settings_with(
        monkeypatch, PUBLIC_BASE_URL="http://connector.internal:8000", RETURN_URL_HOSTS="app.acme.example"
    ).return_url_policy()

    assert (
        policy.check("http://connector.internal:8000/onboarding")
        == "http://connector.internal:8000/onboarding"
    )
    for url in ("http://connector.internal:9000/onboarding", "https://connector.internal/onboarding"):
        with pytest.raises(ConnectionRefused):
            policy.check(url)


def test_return_url_hosts_replaces_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(monkeypatch, RETURN_URL_HOSTS=" app.acme.example, Portal.Acme.Example ,")

    assert settings.return_url_policy().hosts == {"app.acme.example", "portal.acme.example"}
