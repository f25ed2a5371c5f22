import ssl

import pytest
from contracts.runtime.kafka import broker_security, client_security
from contracts.runtime.settings import CommonSettings
from faststream.security import SASLScram512


def test_plaintext_needs_no_security() -> None:
    assert broker_security(CommonSettings()) is None


def test_sasl_ssl_uses_scram_with_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "importer")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-a-real-password")

    security = broker_security(CommonSettings())

    assert isinstance(security, SASLScram512)
    assert security.use_ssl is True
    assert security.ssl_context is not None


def test_sasl_without_credentials_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        broker_security(CommonSettings())


def test_aiokafka_clients_get_the_same_security_as_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "importer")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-a-real-password")

    options = client_security(CommonSettings())

    assert {key: value for key, value in options.items() if key != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "importer",
        "sasl_plain_password": "not-a-real-password",
    }
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_aiokafka_clients_over_tls_only_and_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_security(CommonSettings()) == {}
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    options = client_security(CommonSettings())
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


def test_aiokafka_clients_without_sasl_credentials_refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        client_security(CommonSettings())
