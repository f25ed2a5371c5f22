import pytest
from contracts.runtime.kafka import broker_security
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
