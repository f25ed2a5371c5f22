"""Settings every service reads from the environment (SPEC "Processes and configuration")."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Base of each service's one settings class.

    Secrets are ``SecretStr`` in the subclasses; every value may also come from a file named like the
    variable in ``/run/secrets`` (a mounted Kubernetes Secret), which the environment overrides.
    """

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        secrets_dir=None,
        frozen=True,
    )

    kafka_bootstrap_servers: str = "localhost:9092"
    #: Broker authentication, beyond the SPEC's variables: plaintext for local runs, SASL over TLS
    #: against a secured cluster (Strimzi's per-service ``KafkaUser`` with SCRAM-SHA-512).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    mongodb_url: str = "mongodb://localhost:27017"
    mongodb_database: str = "billing_import"
    http_port: int = Field(default=8000, ge=1, le=65535)
    #: Where the HTTP server listens; all interfaces, as in a container.
    http_host: str = "0.0.0.0"  # noqa: S104
    #: Largest request body the API reads; a longer one is refused with 413 before it is all read.
    http_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"
    #: Console-formatted logs for people; JSON (the default) for machines.
    log_format: str = "json"
    otel_service_name: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    otel_sdk_disabled: bool = False
    #: Consumers: a failing message is tried this many times in all, with backoff between the base and
    #: the max delay, before ``<topic>.dlq``. While a dependency is down the message waits instead, with
    #: waits growing up to the outage delay, for as long as the outage lasts.
    consumer_max_attempts: int = Field(default=5, ge=1, le=50)
    consumer_retry_base_delay_s: float = Field(default=0.5, gt=0)
    consumer_retry_max_delay_s: float = Field(default=30.0, gt=0)
    consumer_outage_max_delay_s: float = Field(default=60.0, gt=0)
    #: The traces' ``deployment.environment``.
    deployment_environment: str = "production"
