"""Bodies the connector's HTTP API accepts and answers (SPEC "HTTP API"), as the OpenAPI shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from contracts.connections import ConnectionStatus
from contracts.events import Feature, Mode, Processor
from contracts.identifiers import EMAIL_MAX_LENGTH, EMAIL_PATTERN
from contracts.sync import SyncStatus
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connector.domain.connection import ImportStatus

ApiKey = Annotated[
    SecretStr,
    Field(min_length=1, max_length=512, description="A processor secret: never echoed, logged or published."),
]
ContactEmail = Annotated[
    str,
    Field(
        max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN, description="Who is told when the import is done."
    ),
]
ReturnUrl = Annotated[
    str,
    Field(
        json_schema_extra={"format": "uri"},
        description="Where the browser goes after Stripe, with ?status=connected|denied|error&code=…: "
        "an https URL (http only on localhost or 127.0.0.1) on one of RETURN_URL_HOSTS, else "
        "invalid_return_url.",
    ),
]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["key_rejected"])
    message: str
    missing_permissions: list[str] | None = Field(
        default=None, description="With insufficient_permissions: the resources the key may not read."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class StripeConnectBody(BaseModel):
    api_key: ApiKey
    contact_email: ContactEmail
    return_url: ReturnUrl | None = None


class ChargebeeConnectBody(BaseModel):
    site: Annotated[
        str,
        Field(
            max_length=255,
            description="The Chargebee site name: a DNS label; a trailing -test means the test site.",
        ),
    ]
    api_key: ApiKey
    contact_email: ContactEmail


class SkipBody(BaseModel):
    contact_email: ContactEmail | None = None


class StripeConnectAccepted(BaseModel):
    connection_id: str
    status: Literal["awaiting_authorization"] = "awaiting_authorization"
    mode: Mode
    authorize_url: str = Field(description="Send the person's browser here to authorize on Stripe.")


class ChargebeeWebhookView(BaseModel):
    url: str = Field(description="Enter it as a webhook endpoint in the Chargebee site's settings.")
    username: str
    password: str = Field(description="Shown only in this answer; only a hash of it is stored.")


class ChargebeeConnected(BaseModel):
    connection_id: str
    status: Literal["connected"] = "connected"
    mode: Mode
    import_id: str
    webhook: ChargebeeWebhookView = Field(
        description="Optional webhooks: HTTP Basic credentials of this connection's endpoint."
    )


class ChargebeeReconnected(BaseModel):
    """A ``needs_reconnect`` connection reconnected in place: same id, history and webhook credentials."""

    connection_id: str
    status: Literal["connected"] = "connected"
    mode: Mode
    reconnected: Literal[True] = True
    import_id: str | None = Field(
        default=None,
        description="The full import started because the gap was beyond the site's event history; "
        "null when sync resumes from where it stopped.",
    )


class SkipAccepted(BaseModel):
    status: Literal["skipped"] = "skipped"
    disabled_features: list[Feature]


class Features(BaseModel):
    model_config = ConfigDict(extra="forbid")

    past_cancellations: bool
    churn_metrics: bool
    recovered_revenue: bool
    coupon_offers: bool
    trial_extension_offers: bool


class LatestImportView(BaseModel):
    import_id: str
    status: ImportStatus
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_code: str | None = None


class SyncView(BaseModel):
    status: SyncStatus = Field(description="live, catching_up, or stopped (not syncing)")
    last_event_at: datetime | None = Field(description="When the newest change applied happened")
    lag_s: float | None = Field(description="Seconds since every earlier change at the processor was applied")


class ConnectionView(BaseModel):
    status: ConnectionStatus
    processor: Processor | None
    mode: Mode | None
    connected_at: datetime | None
    features: Features
    #: Why a feature is off, for those that are: ``read_only_key``, ``read_only_grant``, ``skipped`` ...
    feature_reasons: dict[str, str] = Field(default_factory=dict)
    latest_import: LatestImportView | None
    sync: SyncView = Field(
        description="Keeping the data fresh after the first import: stopped until the importer starts"
        " syncing the connection (no import completed yet, or no processor connected) and once it is"
        " no longer connected."
    )


class ImportAccepted(BaseModel):
    import_id: str
