"""The notifier's one settings class: outgoing mail, the app link and how hard to try a send."""

from __future__ import annotations

from contracts.runtime.settings import CommonSettings
from pydantic import Field, SecretStr, model_validator


class NotifierSettings(CommonSettings):
    """SPEC variables (``SMTP_*``, ``APP_BASE_URL`` and the common ones) plus internal tuning knobs."""

    http_port: int = Field(default=8002, ge=1, le=65535)

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_from: str = "no-reply@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    #: One SMTP conversation (connect to the server's final answer) may take this long.
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    app_base_url: str = "http://localhost:8000"

    #: SMTP attempts per delivery of an event before the message is handed back to Kafka's retries.
    email_send_attempts: int = Field(default=4, ge=1, le=10)
    email_retry_base_delay_s: float = Field(default=0.5, ge=0)
    email_retry_max_delay_s: float = Field(default=8.0, ge=0)
    #: How long a claim on a send stays exclusive; must outlast every attempt and backoff together.
    email_lease_s: float = Field(default=60.0, gt=0)
    #: How often the outbox relay looks for sent emails whose EmailSent is not published yet.
    receipt_relay_interval_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> NotifierSettings:
        # The claim is renewed before each SMTP attempt, so one attempt plus the longest backoff
        # must fit in a lease; otherwise a live sender could be taken over and the email sent twice.
        if self.email_lease_s <= self.smtp_timeout_s + self.email_retry_max_delay_s:
            raise ValueError("EMAIL_LEASE_S must exceed SMTP_TIMEOUT_S + EMAIL_RETRY_MAX_DELAY_S")
        return self
