"""Event models of the public contract (SPEC "Events").

Every event carries ``event_id``, ``type``, ``occurred_at`` and ``account_id``. Fields may be added
but never renamed or removed without a new topic version. Unknown fields are ignored on read so an
older consumer keeps working when a producer adds one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts.errors import MalformedEvent
from contracts.identifiers import AccountId, ContactEmail


def utc_now() -> datetime:
    return datetime.now(UTC)


class Processor(StrEnum):
    STRIPE = "stripe"
    CHARGEBEE = "chargebee"


class Mode(StrEnum):
    LIVE = "live"
    TEST = "test"


class Feature(StrEnum):
    PAST_CANCELLATIONS = "past_cancellations"
    CHURN_METRICS = "churn_metrics"
    RECOVERED_REVENUE = "recovered_revenue"
    COUPON_OFFERS = "coupon_offers"
    TRIAL_EXTENSION_OFFERS = "trial_extension_offers"


#: What a business loses by skipping the processor connection (SPEC: the skip endpoint).
SKIP_DISABLED_FEATURES: Final = (
    Feature.PAST_CANCELLATIONS,
    Feature.RECOVERED_REVENUE,
    Feature.COUPON_OFFERS,
    Feature.TRIAL_EXTENSION_OFFERS,
)


class Resource(StrEnum):
    """A kind of processor object the importer copies."""

    CUSTOMERS = "customers"
    SUBSCRIPTIONS = "subscriptions"
    INVOICES = "invoices"
    COUPONS = "coupons"
    PRICES = "prices"
    PRODUCTS = "products"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    account_id: AccountId

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def key(self) -> bytes:
        """The Kafka key: events of one account stay in order on one partition."""
        return self.account_id.encode()


# --- onboarding.requests.v1: published by the onboarding gateway -----------------------------------


class StripeKeySubmitted(Event):
    type: Literal["StripeKeySubmitted"] = "StripeKeySubmitted"
    api_key_sealed: Annotated[str, Field(min_length=1, max_length=4096)]
    contact_email: ContactEmail
    return_url: str | None = None


class ChargebeeCredentialsSubmitted(Event):
    type: Literal["ChargebeeCredentialsSubmitted"] = "ChargebeeCredentialsSubmitted"
    site: str
    api_key_sealed: Annotated[str, Field(min_length=1, max_length=4096)]
    contact_email: ContactEmail


class SkipRequested(Event):
    type: Literal["SkipRequested"] = "SkipRequested"
    contact_email: ContactEmail | None = None


# --- connections.v1: published by the connector ----------------------------------------------------


class ProcessorConnected(Event):
    type: Literal["ProcessorConnected"] = "ProcessorConnected"
    connection_id: str
    processor: Processor
    mode: Mode
    processor_account_id: str
    contact_email: str
    #: The import this connection starts; the importer uses it so the connector can answer with it.
    import_id: str | None = None


class ProcessorSkipped(Event):
    type: Literal["ProcessorSkipped"] = "ProcessorSkipped"
    disabled_features: list[Feature]
    contact_email: str | None = None


class ProcessorDisconnected(Event):
    type: Literal["ProcessorDisconnected"] = "ProcessorDisconnected"
    connection_id: str
    #: ``DELETE …/connection?erase=true``: the importer also erases the account's stored processor
    #: data (a tombstone per record), then publishes ``AccountDataErased``.
    erase: bool = False


class StripeAuthorizationRequired(Event):
    type: Literal["StripeAuthorizationRequired"] = "StripeAuthorizationRequired"
    connection_id: str
    authorize_url: str


class ConnectionRejected(Event):
    type: Literal["ConnectionRejected"] = "ConnectionRejected"
    code: str
    message: str
    #: The ``event_id`` of the onboarding request this answers, when it came over Kafka.
    request_event_id: UUID | None = None


class ConnectionLost(Event):
    """The stored credentials stopped working (SPEC "Connection lifecycle"): the connection is
    ``needs_reconnect`` until the account reconnects the same processor account."""

    type: Literal["ConnectionLost"] = "ConnectionLost"
    connection_id: str
    processor: Processor
    reason: Literal["deauthorized", "credentials_rejected"]
    contact_email: str | None = None


class ProcessorReconnected(Event):
    """A ``needs_reconnect`` connection works again with new credentials for the same processor
    account; its history is kept and its sync resumes (``import_id`` when a full import was needed)."""

    type: Literal["ProcessorReconnected"] = "ProcessorReconnected"
    connection_id: str
    processor: Processor
    mode: Mode
    processor_account_id: str
    import_id: str | None = None


class AccountDataErased(Event):
    """Every stored record of the connection's processor data is gone, each with its tombstone out."""

    type: Literal["AccountDataErased"] = "AccountDataErased"
    connection_id: str
    records_erased: Annotated[int, Field(ge=0)]


class ImportRequested(Event):
    """A fresh import of an already connected account (the re-sync of ``POST .../imports``)."""

    type: Literal["ImportRequested"] = "ImportRequested"
    connection_id: str
    processor: Processor
    mode: Mode
    processor_account_id: str
    contact_email: str
    import_id: str


# --- imports.v1: published by the importer ---------------------------------------------------------


class ResourceCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    imported: Annotated[int, Field(ge=0)]


ResourceCounts = dict[str, ResourceCount]


class ImportStarted(Event):
    type: Literal["ImportStarted"] = "ImportStarted"
    import_id: str
    processor: Processor


class ImportProgressed(Event):
    type: Literal["ImportProgressed"] = "ImportProgressed"
    import_id: str
    resources: ResourceCounts


class ImportCompleted(Event):
    type: Literal["ImportCompleted"] = "ImportCompleted"
    import_id: str
    processor: Processor
    resources: ResourceCounts
    past_cancellations: Annotated[int, Field(ge=0)]
    started_at: AwareDatetime
    finished_at: AwareDatetime
    contact_email: str


class ImportFailed(Event):
    type: Literal["ImportFailed"] = "ImportFailed"
    import_id: str
    code: str
    message: str
    contact_email: str
    processor: Processor | None = None
    #: With ``code`` ``credentials_rejected``: the connection's ``credentials_version`` the processor
    #: refused. A refusal of credentials that a reconnect has replaced since does not cost the
    #: reconnected connection its credentials.
    credentials_version: int | None = None


# --- notifications.v1: published by the notifier ---------------------------------------------------


#: What an email told its contact (``EmailSent.kind``).
EmailKind = Literal["import_completed", "import_failed", "connection_lost"]


class EmailSent(Event):
    """An email left for ``to``. ``import_id`` names the import it was about, when it was about one;
    ``kind`` is set on every receipt this notifier publishes (absent only on older ones)."""

    type: Literal["EmailSent"] = "EmailSent"
    import_id: str | None = None
    to: str
    kind: EmailKind | None = None


# --- offers.v1: published by the connector, which applies offers -------------------------------


class OfferApplied(Event):
    """A churn-prevention offer applied at the processor (SPEC "Offers"); MRR in minor units."""

    type: Literal["OfferApplied"] = "OfferApplied"
    offer_id: str
    processor: Processor
    subscription_id: str
    customer_id: str
    kind: Literal["coupon", "trial_extension"]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    mrr_before: int
    mrr_after: int
    applied_at: AwareDatetime


class TopicEvents:
    """The events one topic carries, parsed by their ``type``.

    An event type this version does not know yet parses to ``None`` so that consumers skip it
    instead of failing: producers may add event types to a topic.
    """

    def __init__(self, *members: type[Event]) -> None:
        self._by_type: dict[str, type[Event]] = {
            str(member.model_fields["type"].default): member for member in members
        }

    @property
    def types(self) -> tuple[type[Event], ...]:
        return tuple(self._by_type.values())

    def parse(self, body: bytes | str | Mapping[str, Any]) -> Event | None:
        raw = dict(body) if isinstance(body, Mapping) else json.loads(body)
        if not isinstance(raw, dict):
            raise MalformedEvent("an event is a JSON object")
        member = self._by_type.get(str(raw.get("type")))
        return None if member is None else member.model_validate(raw)


ONBOARDING_REQUEST_EVENTS: Final = TopicEvents(
    StripeKeySubmitted, ChargebeeCredentialsSubmitted, SkipRequested
)
CONNECTION_EVENTS: Final = TopicEvents(
    ProcessorConnected,
    ProcessorSkipped,
    ProcessorDisconnected,
    StripeAuthorizationRequired,
    ConnectionRejected,
    ImportRequested,
    ConnectionLost,
    ProcessorReconnected,
    AccountDataErased,
)
IMPORT_EVENTS: Final = TopicEvents(ImportStarted, ImportProgressed, ImportCompleted, ImportFailed)
NOTIFICATION_EVENTS: Final = TopicEvents(EmailSent)
OFFER_EVENTS: Final = TopicEvents(OfferApplied)
