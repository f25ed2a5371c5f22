"""Keeping imported accounts fresh (SPEC "Keeping data fresh"): what the connector and importer share.

The connector takes processor webhooks in and only queues them: each verified webhook becomes one
:class:`ProcessorEventReceived` on the internal topic :data:`SYNC_EVENTS_TOPIC`, keyed by the
processor account (:func:`sync_key`), which the importer consumes. The importer records how far
each connection's sync got in the ``sync_state`` collection (:class:`StoredSyncState`), which the
connector reads to answer ``sync`` in ``GET …/connection``. When sync finds a connection's
credentials dead, the importer says so with :class:`CredentialsLost` on the internal topic
:data:`CONNECTION_REPORTS_TOPIC`, which the connector consumes. The two services share nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.events import Processor, utc_now

#: Internal topic (not public): processor events to apply, and the sync scheduler's ticks.
SYNC_EVENTS_TOPIC: Final = "importer.sync-events.v1"
#: The importer's record of each connection's sync (``_id`` = connection id).
SYNC_STATE_COLLECTION: Final = "sync_state"
#: Stripe's event type saying an account removed our platform's access.
STRIPE_DEAUTHORIZED: Final = "account.application.deauthorized"
#: Internal topic (not public): the importer tells the connector that a connection's processor
#: refused its stored credentials, keyed by account id; the connector moves it to needs_reconnect.
CONNECTION_REPORTS_TOPIC: Final = "connector.connection-reports.v1"


def sync_key(processor: Processor, processor_account_id: str) -> str:
    """The Kafka key of one processor account's sync work: its events and ticks stay in order."""
    return f"{processor.value}:{processor_account_id}"


class ProcessorEventReceived(BaseModel):
    """A processor event taken in by a webhook (verified, not yet applied).

    Carries only what says which object changed: the importer re-reads the object from the
    processor before storing it, so the event's own copy of the object never travels. Stripe events
    name the connected account (``account``); the connector does not read the store to learn which
    of our accounts that is, so ``account_id`` and ``connection_id`` are set only where the request
    already named the connection (Chargebee's URL). Stripe's deauthorization is not queued: the
    connector acts on it itself (the connection loses its credentials).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["ProcessorEventReceived"] = "ProcessorEventReceived"
    processor: Processor
    #: Stripe: the connected account (``acct_…``); Chargebee: the site name.
    processor_account_id: Annotated[str, Field(min_length=1, max_length=255)]
    #: The processor's own event id (Stripe ``evt_…``, Chargebee ``ev_…``).
    processor_event_id: Annotated[str, Field(min_length=1, max_length=255)]
    event_type: Annotated[str, Field(min_length=1, max_length=255)]
    #: When the processor says the change happened (Stripe ``created``, Chargebee ``occurred_at``).
    created: AwareDatetime
    livemode: bool | None = None
    #: The object the event is about, when the event names one.
    object_type: str | None = None
    object_id: str | None = None
    #: Chargebee: the object's ``resource_version`` in the event (milliseconds, grows with each change).
    resource_version: int | None = None
    connection_id: str | None = None
    account_id: str | None = None
    received_at: AwareDatetime = Field(default_factory=utc_now)

    def key(self) -> bytes:
        return sync_key(self.processor, self.processor_account_id).encode()


class CredentialsLost(BaseModel):
    """The importer found a connection's credentials dead: a 401 to them while syncing
    (``credentials_rejected``), or Stripe's deauthorization in the account's event list
    (``deauthorized``). The connector makes the connection ``needs_reconnect`` (once: a repeated
    report changes nothing). A 401 during an import travels as ``ImportFailed`` instead."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["CredentialsLost"] = "CredentialsLost"
    account_id: str
    connection_id: str
    processor: Processor
    reason: Literal["deauthorized", "credentials_rejected"]
    #: The processor event that said so (Stripe ``evt_…`` of the deauthorization), if one did.
    processor_event_id: str | None = None
    #: The connection's ``credentials_version`` the refused requests used (``credentials_rejected``):
    #: the connector ignores a report about credentials a reconnect has replaced since.
    credentials_version: int | None = None
    observed_at: AwareDatetime = Field(default_factory=utc_now)

    def key(self) -> bytes:
        return self.account_id.encode()


class SyncStatus(StrEnum):
    #: Applying events as they come, within a poll interval of the processor.
    LIVE = "live"
    #: Set up, or behind by more than a few poll intervals (first poll pending, backlog, errors).
    CATCHING_UP = "catching_up"
    #: Not syncing: disconnected, credentials lost, or no import completed yet.
    STOPPED = "stopped"


class StoredSyncState(BaseModel):
    """The part of a ``sync_state`` document the connector reads (the importer keeps more in it)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    connection_id: Annotated[str, Field(alias="_id")]
    account_id: str
    processor: Processor
    status: SyncStatus
    #: When the newest event applied happened at the processor.
    last_event_at: AwareDatetime | None = None
    #: Every change the processor made before this instant is applied (the last complete poll's start).
    synced_through: AwareDatetime | None = None
    #: The importer's ``SYNC_INTERVAL_S`` when it last wrote the document.
    interval_s: float = 60.0
    #: Unix second the next poll of the event list starts at (inclusive): where sync resumes.
    cursor_s: int | None = None


#: How long each processor keeps an account's events readable. Stripe guarantees 30 days. Chargebee
#: documents no limit for its events API (its web interface shows 90 days): taken as Stripe's, so a
#: gap that long is filled by a full import rather than trusted to an event list that may be cut.
EVENT_HISTORY: Final[Mapping[Processor, timedelta]] = {
    Processor.STRIPE: timedelta(days=30),
    Processor.CHARGEBEE: timedelta(days=30),
}
#: Margin kept from the edge of the history, for the time a poll takes and clocks that disagree.
HISTORY_MARGIN: Final = timedelta(hours=1)


def beyond_event_history(processor: Processor, cursor: datetime, now: datetime) -> bool:
    """Whether reading the event list from ``cursor`` can no longer see every change since."""
    return cursor < now - EVENT_HISTORY[processor] + HISTORY_MARGIN


def resumable(state: StoredSyncState | None, now: datetime) -> bool:
    """Whether a stopped sync can resume from its cursor (after a reconnect) instead of a full
    import: it had one, and the events since are still in the processor's history."""
    if state is None or state.cursor_s is None:
        return False
    return not beyond_event_history(state.processor, datetime.fromtimestamp(state.cursor_s, UTC), now)


#: Behind by more than this many poll intervals, a running sync shows as ``catching_up``.
LIVE_WITHIN_INTERVALS: Final = 3


def sync_view(state: StoredSyncState, now: datetime | None = None) -> tuple[SyncStatus, float | None]:
    """The status to show for ``state`` and its lag in seconds (``None`` when nothing synced yet)."""
    now = now or datetime.now(UTC)
    if state.synced_through is None:
        lag = None
    else:
        lag = max(0.0, round((now - state.synced_through).total_seconds(), 3))
    if state.status is SyncStatus.STOPPED:
        return SyncStatus.STOPPED, lag
    if lag is None or lag > LIVE_WITHIN_INTERVALS * state.interval_s + 5:
        return SyncStatus.CATCHING_UP, lag
    return state.status, lag
