"""Reconnecting a connection whose credentials stopped working (SPEC "Connection lifecycle").

A ``needs_reconnect`` connection keeps its id and its history; new credentials may take the place of
the lost ones only for the same processor account (Stripe: the same ``acct_…``, Chargebee: the same
site), else the history would mix two businesses: ``different_processor_account``, and the person
disconnects first. Sync then resumes from where it stopped, or, when the processor no longer keeps
the events of the gap, a full import fills it.
"""

from __future__ import annotations

from datetime import datetime

from contracts.connections import ConnectionStatus
from contracts.events import Processor
from contracts.sync import StoredSyncState, resumable

from connector.domain.connection import Connection
from connector.domain.refusals import different_processor_account

_NAMES = {Processor.STRIPE: "Stripe", Processor.CHARGEBEE: "Chargebee"}


def reconnect_target(current: Connection | None, processor: Processor) -> Connection | None:
    """The connection a connect request reconnects: the account's ``needs_reconnect`` one, if any.

    Checked before any outbound request: a connection lost with one processor is not reconnected
    with the other.
    """
    if current is None or current.status is not ConnectionStatus.NEEDS_RECONNECT:
        return None
    if current.processor is not processor:
        raise different_processor_account(_name(current))
    return current


def require_same_account(connection: Connection, processor_account_id: str) -> None:
    """Refuse new credentials of another processor account than the connection's."""
    if processor_account_id != connection.processor_account_id:
        raise different_processor_account(_name(connection))


def _name(connection: Connection) -> str:
    return "payment processor" if connection.processor is None else _NAMES[connection.processor]


def needs_full_import(state: StoredSyncState | None, now: datetime) -> bool:
    """Whether a reconnect must import everything again instead of resuming sync: sync never
    started (the first import did not complete), or the gap is beyond the processor's events."""
    return not resumable(state, now)
