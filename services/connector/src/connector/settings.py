"""The connector's one settings class, read from the environment (SPEC "Processes and configuration")."""

from __future__ import annotations

import binascii
from typing import Annotated, Final
from urllib.parse import urlsplit

from contracts.connections import CredentialCipher
from contracts.runtime.settings import CommonSettings
from pydantic import Field, SecretStr, field_validator, model_validator

from connector.domain.base64_text import decode_key
from connector.domain.return_url import ReturnUrlPolicy

SITE_PLACEHOLDER: Final = "{site}"
CURVE25519_KEY_BYTES: Final = 32


class ConnectorSettings(CommonSettings):
    http_port: int = Field(default=8000, ge=1, le=65535)

    #: HS256 secret of the API's bearer tokens; the service refuses to start without it.
    api_jwt_secret: Annotated[SecretStr, Field(min_length=1)]
    #: Comma-separated Fernet keys for stored credentials, newest first; required.
    credentials_keys: Annotated[SecretStr, Field(min_length=1)]

    public_base_url: str = "http://localhost:8000"
    #: The product's own address (the notifier's ``APP_BASE_URL``): one of the default return hosts.
    app_base_url: str = "http://localhost:8000"
    #: Comma-separated hosts a ``return_url`` may point to; default: those of the two base URLs.
    return_url_hosts: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_connect_base: str = "https://connect.stripe.com"
    stripe_client_id: str | None = None
    stripe_platform_secret_key: SecretStr | None = None
    chargebee_api_url_template: str = "https://{site}.chargebee.com/api/v2"
    #: base64 of the Curve25519 private key that opens secrets sealed by the onboarding gateway.
    connector_private_key: SecretStr | None = None

    #: The Stripe Connect webhook endpoint's signing secrets, comma-separated, newest first; none:
    #: Stripe webhooks are refused.
    stripe_webhook_secret: SecretStr | None = None

    #: Outbound calls to a processor give up after this long (then ``processor_unavailable``).
    processor_timeout_s: float = Field(default=10.0, gt=0, le=60)
    #: How long a Stripe OAuth ``state`` stays usable (the issue says 10 minutes).
    oauth_state_ttl_s: int = Field(default=600, ge=30, le=3600)
    #: How often events that a crash or a broker outage left unpublished are sent again.
    outbox_relay_interval_s: float = Field(default=5.0, gt=0)
    #: A Stripe connection still awaiting its OAuth authorization this long expires: its key is
    #: destroyed and the connection ends (internal; docs/connector.md).
    pending_authorization_ttl_s: float = Field(default=86_400.0, ge=60)
    #: How often pending authorizations are checked for expiry.
    pending_authorization_check_s: float = Field(default=60.0, gt=0)

    @field_validator("public_base_url", "app_base_url", "stripe_api_base", "stripe_connect_base")
    @classmethod
    def _http_base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("chargebee_api_url_template")
    @classmethod
    def _site_template(cls, value: str) -> str:
        if value.count(SITE_PLACEHOLDER) != 1:
            raise ValueError("must contain {site} exactly once")
        parts = urlsplit(value.replace(SITE_PLACEHOLDER, "site"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL template")
        return value.rstrip("/")

    @field_validator("connector_private_key")
    @classmethod
    def _curve25519_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                decoded = decode_key(value.get_secret_value())
            except (binascii.Error, ValueError):
                decoded = b""
            if len(decoded) != CURVE25519_KEY_BYTES:
                raise ValueError("must be the base64 of a 32-byte Curve25519 private key")
        return value

    @model_validator(mode="after")
    def _keys_open(self) -> ConnectorSettings:
        # A malformed key would otherwise surface only at the first connect or import.
        CredentialCipher.from_setting(self.credentials_keys.get_secret_value())
        return self

    def credential_cipher(self) -> CredentialCipher:
        return CredentialCipher.from_setting(self.credentials_keys.get_secret_value())

    def return_url_policy(self) -> ReturnUrlPolicy:
        return ReturnUrlPolicy.from_setting(
            self.return_url_hosts, public_base_url=self.public_base_url, app_base_url=self.app_base_url
        )

    @property
    def oauth_redirect_uri(self) -> str:
        return f"{self.public_base_url}/v1/oauth/stripe/callback"
