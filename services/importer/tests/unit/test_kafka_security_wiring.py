"""The importer's own Kafka clients (records, page requests) authenticate as its broker does."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from importer.bootstrap import build
from importer.settings import ImporterSettings


def settings(**kafka: str) -> ImporterSettings:
    """The importer's settings with ``KAFKA_*`` security variables, as the environment gives them."""
    values = {
        "kafka_bootstrap_servers": "kafka.example:9093",
        "mongodb_url": "mongodb://127.0.0.1:9",
        "api_jwt_secret": "jwt-secret-for-this-test-only-0000",
        "credentials_keys": Fernet.generate_key().decode(),
        **kafka,
    }
    return ImporterSettings.model_validate(values)


def test_sasl_over_tls_reaches_the_record_publisher() -> None:
    app = build(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="importer",
            kafka_sasl_password="not-a-real-password",
        )
    )

    assert app.state.dependencies.record_publisher.security_protocol == "SASL_SSL"


def test_plaintext_stays_plaintext() -> None:
    publisher = build(settings()).state.dependencies.record_publisher

    assert publisher.security_protocol == "PLAINTEXT"


def test_sasl_without_a_password_refuses_to_build() -> None:
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        build(settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="importer"))
