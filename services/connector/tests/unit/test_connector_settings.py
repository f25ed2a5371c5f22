"""The service refuses to start without its secrets, and says why without printing them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from connector.settings import ConnectorSettings
from connector_fakes import new_fernet_key
from pydantic import SecretStr, ValidationError

REQUIRED = {"API_JWT_SECRET": "s" * 40, "CREDENTIALS_KEYS": new_fernet_key()}


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> ConnectorSettings:
    for name in ("API_JWT_SECRET", "CREDENTIALS_KEYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ConnectorSettings()


def test_defaults_are_the_spec_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, **REQUIRED)

    assert settings.http_port == 8000
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert settings.stripe_connect_base == "https://connect.stripe.com"
    assert settings.chargebee_api_url_template == "https://{site}.chargebee.com/api/v2"
    assert settings.oauth_redirect_uri == "http://localhost:8000/v1/oauth/stripe/callback"
    assert isinstance(settings.api_jwt_secret, SecretStr)
    assert isinstance(settings.credentials_keys, SecretStr)
    assert REQUIRED["API_JWT_SECRET"] not in repr(settings)


@pytest.mark.parametrize("missing", ["API_JWT_SECRET", "CREDENTIALS_KEYS"])
def test_a_missing_secret_is_refused(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    with pytest.raises(ValidationError, match=missing.lower()):
        settings_from(monkeypatch, **{k: v for k, v in REQUIRED.items() if k != missing})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CREDENTIALS_KEYS", "not-a-fernet-key"),
        ("CREDENTIALS_KEYS", " , "),
        ("CHARGEBEE_API_URL_TEMPLATE", "https://chargebee.example/api/v2"),
        ("CHARGEBEE_API_URL_TEMPLATE", "ftp://{site}.chargebee.example"),
        ("STRIPE_API_BASE", "api.stripe.com"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    with pytest.raises(ValidationError):
        settings_from(monkeypatch, **{**REQUIRED, name: value})


def test_rotation_keys_are_read_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from contracts.connections import CredentialCipher, ProcessorCredentials

    old, new = new_fernet_key(), new_fernet_key()
    token = CredentialCipher([old]).encrypt(ProcessorCredentials(api_key=SecretStr("k")))

    cipher = settings_from(
        monkeypatch, **{**REQUIRED, "CREDENTIALS_KEYS": f"{new},{old}"}
    ).credential_cipher()

    assert cipher.decrypt(token).api_key.get_secret_value() == "k"
    assert CredentialCipher([new]).decrypt(cipher.encrypt(ProcessorCredentials(api_key=SecretStr("k"))))


def test_the_process_exits_naming_the_missing_variable_but_no_value() -> None:
    secret = new_fernet_key()
    env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_KEYS": secret}

    result = subprocess.run(
        [sys.executable, "-m", "connector"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 2
    assert "API_JWT_SECRET" in result.stderr
    assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ=", "A" * 60])
def test_a_private_key_that_is_not_32_bytes_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ValidationError, match="32-byte"):
        settings_from(monkeypatch, **{**REQUIRED, "CONNECTOR_PRIVATE_KEY": value})


def test_stripe_connect_needs_both_the_client_id_and_the_platform_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.bootstrap import stripe_platform

    only_id = settings_from(monkeypatch, **{**REQUIRED, "STRIPE_CLIENT_ID": "ca_1"})
    both = settings_from(
        monkeypatch, **{**REQUIRED, "STRIPE_CLIENT_ID": "ca_1", "STRIPE_PLATFORM_SECRET_KEY": "sk_x"}
    )

    assert stripe_platform(only_id).client_id is None
    assert stripe_platform(both).client_id == "ca_1"
