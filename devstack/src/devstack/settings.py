"""The services' environment, built in one place: secrets minted per run, addresses, ports, sandbox URLs."""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from devstack.net import LOCALHOST, preferred_port
from devstack.sandbox import SampleCredentials, SandboxEndpoints

SERVICES: Final = ("connector", "importer", "notifier")
#: The SPEC's default ports, preferred by the run command when they are free.
DEFAULT_HTTP_PORTS: Final = {"connector": 8000, "importer": 8001, "notifier": 8002}
DEFAULT_DATABASE: Final = "billing_import"
JWT_TTL_S: Final = 3600
DEFAULT_EXTRA_ENV: Final = {"OTEL_SDK_DISABLED": "true", "DEPLOYMENT_ENVIRONMENT": "development"}

#: Which service reads which variable (the SPEC's "used by" column); each gets only its own.
_ALL: Final = frozenset(SERVICES)
_CONNECTOR_IMPORTER: Final = frozenset({"connector", "importer"})
_VARIABLES_BY_SERVICE: Final = {
    "KAFKA_BOOTSTRAP_SERVERS": _ALL,
    "MONGODB_URL": _ALL,
    "MONGODB_DATABASE": _ALL,
    "HTTP_PORT": _ALL,
    "API_JWT_SECRET": _CONNECTOR_IMPORTER,
    "PUBLIC_BASE_URL": frozenset({"connector"}),
    "STRIPE_API_BASE": _CONNECTOR_IMPORTER,
    "STRIPE_CONNECT_BASE": frozenset({"connector"}),
    "STRIPE_CLIENT_ID": frozenset({"connector"}),
    "STRIPE_PLATFORM_SECRET_KEY": frozenset({"connector"}),
    "CHARGEBEE_API_URL_TEMPLATE": _CONNECTOR_IMPORTER,
    "CREDENTIALS_KEYS": _CONNECTOR_IMPORTER,
    "CONNECTOR_PRIVATE_KEY": frozenset({"connector"}),
    "SMTP_HOST": frozenset({"notifier"}),
    "SMTP_PORT": frozenset({"notifier"}),
    "SMTP_FROM": frozenset({"notifier"}),
    "APP_BASE_URL": frozenset({"notifier"}),
}


def new_credentials_key() -> str:
    """A key for ``CREDENTIALS_KEYS``: the URL-safe base64 of 32 random bytes (the Fernet key format)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def mint_jwt(secret: str, account_id: str, *, ttl_s: int = JWT_TTL_S) -> str:
    """An API bearer token: HS256 with ``secret``, ``sub`` = ``account_id``, expiring in ``ttl_s``."""
    import jwt

    now = int(time.time())
    return jwt.encode({"sub": account_id, "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")


def seal_secret(public_key_b64: str, plaintext: str) -> str:
    """``plaintext`` sealed (libsodium sealed box) to the connector's public key, standard base64.

    What the onboarding gateway puts in ``api_key_sealed``.
    """
    from nacl.public import PublicKey, SealedBox

    sealed: bytes = SealedBox(PublicKey(base64.b64decode(public_key_b64))).encrypt(plaintext.encode())
    return base64.b64encode(sealed).decode()


@dataclass(frozen=True, repr=False)
class StackSecrets:
    """Secrets minted for one run; nothing here is ever a real credential."""

    api_jwt_secret: str
    credentials_keys: str
    connector_private_key: str
    connector_public_key: str

    @classmethod
    def generate(cls) -> StackSecrets:
        from nacl.public import PrivateKey

        private = PrivateKey.generate()
        return cls(
            api_jwt_secret=secrets.token_urlsafe(32),
            credentials_keys=new_credentials_key(),
            connector_private_key=base64.b64encode(bytes(private)).decode(),
            connector_public_key=base64.b64encode(bytes(private.public_key)).decode(),
        )

    def jwt(self, account_id: str, *, ttl_s: int = JWT_TTL_S) -> str:
        return mint_jwt(self.api_jwt_secret, account_id, ttl_s=ttl_s)

    def seal(self, plaintext: str) -> str:
        return seal_secret(self.connector_public_key, plaintext)

    def __repr__(self) -> str:
        return "StackSecrets(<redacted>)"


def free_http_ports(preferred: Mapping[str, int] | None = None) -> dict[str, int]:
    """A port per service: the preferred one when it is free, else any free one."""
    wanted = preferred or {}
    return {service: preferred_port(wanted.get(service)) for service in SERVICES}


@dataclass(frozen=True)
class StackSettings:
    """Everything the three services are configured with; ``service_env`` turns it into env vars."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    smtp_port: int
    secrets: StackSecrets
    sandbox: SandboxEndpoints
    http_ports: Mapping[str, int] = field(default_factory=free_http_ports)
    mongodb_database: str = DEFAULT_DATABASE
    smtp_host: str = LOCALHOST
    smtp_from: str = "no-reply@billing-import.test"
    credentials: SampleCredentials = field(default_factory=SampleCredentials)
    app_base_url: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EXTRA_ENV))

    def base_url(self, service: str) -> str:
        return f"http://{LOCALHOST}:{self.http_ports[service]}"

    def jwt(self, account_id: str, *, ttl_s: int = JWT_TTL_S) -> str:
        return self.secrets.jwt(account_id, ttl_s=ttl_s)

    def all_variables(self) -> dict[str, str]:
        """Every variable of the SPEC's table with this stack's value (``HTTP_PORT`` excepted)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": self.mongodb_database,
            "API_JWT_SECRET": self.secrets.api_jwt_secret,
            "PUBLIC_BASE_URL": self.base_url("connector"),
            "STRIPE_API_BASE": self.sandbox.stripe_api_base,
            "STRIPE_CONNECT_BASE": self.sandbox.stripe_connect_base,
            "STRIPE_CLIENT_ID": self.credentials.stripe_client_id,
            "STRIPE_PLATFORM_SECRET_KEY": self.credentials.stripe_platform_secret_key,
            "CHARGEBEE_API_URL_TEMPLATE": self.sandbox.chargebee_api_url_template,
            "CREDENTIALS_KEYS": self.secrets.credentials_keys,
            "CONNECTOR_PRIVATE_KEY": self.secrets.connector_private_key,
            "SMTP_HOST": self.smtp_host,
            "SMTP_PORT": str(self.smtp_port),
            "SMTP_FROM": self.smtp_from,
            "APP_BASE_URL": self.app_base_url or self.base_url("connector"),
        }

    def service_env(self, service: str, **overrides: str) -> dict[str, str]:
        """The environment of ``service``: the variables it reads, its ``HTTP_PORT``, then ``overrides``."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
        own = {
            name: value
            for name, value in self.all_variables().items()
            if service in _VARIABLES_BY_SERVICE.get(name, _ALL)
        }
        return {**self.extra_env, **own, "HTTP_PORT": str(self.http_ports[service]), **overrides}
