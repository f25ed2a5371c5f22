"""The sync topic's messages (``importer.sync-events.v1``, internal): ticks and webhook events.

The scheduler publishes one :class:`SyncDue` per connection due for a poll; the connector
publishes ``contracts.sync.ProcessorEventReceived`` per webhook. Both are keyed by the processor
account, so one account's sync work is handled in order by one consumer at a time.
"""

from __future__ import annotations

import json
from typing import Literal

from contracts.events import Processor
from contracts.sync import ProcessorEventReceived, sync_key
from pydantic import AwareDatetime, BaseModel, ConfigDict

from importer.domain.sync import SyncState


class SyncDue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["SyncDue"] = "SyncDue"
    connection_id: str
    account_id: str
    processor: Processor
    processor_account_id: str
    due_at: AwareDatetime

    @classmethod
    def of(cls, state: SyncState, due_at: AwareDatetime) -> SyncDue:
        return cls(
            connection_id=state.connection_id,
            account_id=state.account_id,
            processor=state.processor,
            processor_account_id=state.processor_account_id,
            due_at=due_at,
        )

    def key(self) -> bytes:
        return sync_key(self.processor, self.processor_account_id).encode()


def parse_sync_message(body: bytes | str) -> SyncDue | ProcessorEventReceived | None:
    """The message, or ``None`` for a type this version does not know (skipped, not failed)."""
    raw = json.loads(body)
    if not isinstance(raw, dict):
        raise TypeError("a sync message is a JSON object")
    if raw.get("type") == "SyncDue":
        return SyncDue.model_validate(raw)
    if raw.get("type") == "ProcessorEventReceived":
        return ProcessorEventReceived.model_validate(raw)
    return None
